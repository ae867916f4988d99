"""Tests for pimsync.export.retention.to_keep: which archives an export keeps."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pimsync.config import KeepPolicy
from pimsync.export.retention import to_keep


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def year_every_6_hours() -> list[datetime]:
    """2025-01-01 00:00 to 2025-12-31 18:00 UTC, every 6 hours: 365 * 4 archives."""
    start = utc(2025, 1, 1)
    return [start + timedelta(hours=6 * i) for i in range(365 * 4)]


YEAR = year_every_6_hours()
NEWEST = utc(2025, 12, 31, 18)


def newest_per(times: list[datetime], bucket: Callable[[datetime], Hashable]) -> dict:
    groups: dict[Hashable, datetime] = {}
    for t in times:
        key = bucket(t.astimezone(UTC))
        groups[key] = max(groups.get(key, t), t)
    return groups


def test_generated_year() -> None:
    assert len(YEAR) == 1460
    assert YEAR[0] == utc(2025, 1, 1) and YEAR[-1] == NEWEST


# --------------------------------------------------------------------------- single tiers


def test_last() -> None:
    kept = to_keep(YEAR, KeepPolicy(last=7))
    assert kept == {NEWEST - timedelta(hours=6 * i) for i in range(7)}
    assert min(kept) == utc(2025, 12, 30, 6)


def test_daily() -> None:
    kept = to_keep(YEAR, KeepPolicy(daily=30))
    assert len(kept) == 30
    assert kept == {utc(2025, 12, d, 18) for d in range(2, 32)}
    newest_of_day = newest_per(YEAR, lambda t: t.date())
    assert kept == {newest_of_day[date(2025, 12, d)] for d in range(2, 32)}


def test_weekly() -> None:
    kept = to_keep(YEAR, KeepPolicy(weekly=8))
    # 2025-12-31 is a Wednesday in ISO week 2026-W01; the weeks before end on Sundays.
    assert kept == {
        utc(2025, 12, 31, 18),
        utc(2025, 12, 28, 18),
        utc(2025, 12, 21, 18),
        utc(2025, 12, 14, 18),
        utc(2025, 12, 7, 18),
        utc(2025, 11, 30, 18),
        utc(2025, 11, 23, 18),
        utc(2025, 11, 16, 18),
    }
    newest_of_week = newest_per(YEAR, lambda t: t.isocalendar()[:2])
    assert {t.isocalendar()[:2] for t in kept} == set(sorted(newest_of_week)[-8:])
    for t in kept:
        assert newest_of_week[t.isocalendar()[:2]] == t


def test_monthly() -> None:
    kept = to_keep(YEAR, KeepPolicy(monthly=12))
    month_ends = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert kept == {utc(2025, m, d, 18) for m, d in enumerate(month_ends, 1)}
    newest_of_month = newest_per(YEAR, lambda t: (t.year, t.month))
    assert kept == set(newest_of_month.values())


def test_monthly_fewer_than_available() -> None:
    kept = to_keep(YEAR, KeepPolicy(monthly=3))
    assert kept == {utc(2025, 12, 31, 18), utc(2025, 11, 30, 18), utc(2025, 10, 31, 18)}


def test_counts_larger_than_available() -> None:
    assert to_keep(YEAR, KeepPolicy(last=10_000)) == set(YEAR)
    daily = to_keep(YEAR, KeepPolicy(daily=1000))
    assert len(daily) == 365 and all(t.hour == 18 for t in daily)
    weekly = to_keep(YEAR, KeepPolicy(weekly=1000))
    # ISO weeks 2025-W01 (from Mon 2024-12-30) to 2025-W52, and 2026-W01 (from Mon 2025-12-29)
    assert len(weekly) == 53
    assert utc(2025, 1, 5, 18) in weekly  # Sunday, end of 2025-W01
    assert utc(2025, 1, 6, 18) not in weekly  # Monday of 2025-W02
    assert len(to_keep(YEAR, KeepPolicy(monthly=1000))) == 12


# --------------------------------------------------------------------------- all tiers


def test_all_tiers_union() -> None:
    policy = KeepPolicy(last=7, daily=30, weekly=8, monthly=12)
    kept = to_keep(YEAR, policy)
    last = to_keep(YEAR, KeepPolicy(last=7))
    daily = to_keep(YEAR, KeepPolicy(daily=30))
    weekly = to_keep(YEAR, KeepPolicy(weekly=8))
    monthly = to_keep(YEAR, KeepPolicy(monthly=12))
    assert kept == last | daily | weekly | monthly
    # daily: Dec 2..31 at 18:00 (30); last adds Dec 31 00/06/12 and Dec 30 06/12 (5; its
    # Dec 31 18:00 and Dec 30 18:00 are daily's too); weekly adds Nov 16, 23, 30 at 18:00 (3);
    # monthly adds the month ends Jan..Oct at 18:00 (10; Nov 30 and Dec 31 are kept already).
    assert last - daily == {
        utc(2025, 12, 31, 12),
        utc(2025, 12, 31, 6),
        utc(2025, 12, 31, 0),
        utc(2025, 12, 30, 12),
        utc(2025, 12, 30, 6),
    }
    assert weekly - daily == {utc(2025, 11, 16, 18), utc(2025, 11, 23, 18), utc(2025, 11, 30, 18)}
    assert len(monthly - daily - weekly) == 10
    assert all(t.hour == 18 and (t + timedelta(days=1)).day == 1 for t in monthly)
    assert len(kept) == 30 + 5 + 3 + 10 == 48
    assert len(set(YEAR) - kept) == 1460 - 48
    assert NEWEST in kept


def test_order_of_input_does_not_matter() -> None:
    policy = KeepPolicy(last=3, daily=5, weekly=4, monthly=2)
    shuffled = list(YEAR)
    random.Random(4).shuffle(shuffled)
    assert to_keep(shuffled, policy) == to_keep(YEAR, policy)
    assert to_keep(tuple(reversed(YEAR)), policy) == to_keep(YEAR, policy)


def test_docstring_example() -> None:
    times = [
        utc(2026, 2, 28, 18),
        utc(2026, 3, 1, 6),
        utc(2026, 3, 1, 18),
        utc(2026, 3, 2, 6),
        utc(2026, 3, 2, 18),
        utc(2026, 3, 3, 6),
        utc(2026, 3, 3, 18),
    ]
    kept = to_keep(times, KeepPolicy(last=2, daily=2, monthly=2))
    assert kept == {
        utc(2026, 3, 3, 18),
        utc(2026, 3, 3, 6),
        utc(2026, 3, 2, 18),
        utc(2026, 2, 28, 18),
    }


# --------------------------------------------------------------------------- edge cases


def test_newest_always_kept() -> None:
    assert to_keep(YEAR, KeepPolicy()) == {NEWEST}
    assert to_keep(YEAR, KeepPolicy(last=0, daily=0, weekly=0, monthly=0)) == {NEWEST}
    assert to_keep([utc(2026, 1, 1)], KeepPolicy()) == {utc(2026, 1, 1)}
    old = [utc(2020, 1, 1), utc(2026, 5, 5), utc(2021, 1, 1)]
    assert to_keep(old, KeepPolicy()) == {utc(2026, 5, 5)}


def test_none_keeps_everything() -> None:
    assert to_keep(YEAR, None) == set(YEAR)
    assert to_keep([utc(2026, 1, 1), utc(2026, 1, 1)], None) == {utc(2026, 1, 1)}


@pytest.mark.parametrize("policy", [None, KeepPolicy(), KeepPolicy(1, 2, 3, 4)])
def test_empty(policy: KeepPolicy | None) -> None:
    assert to_keep([], policy) == set()
    assert to_keep((), policy) == set()


def test_equal_times_count_once() -> None:
    t = utc(2026, 1, 1, 12)
    times = [t, t, t - timedelta(hours=1), t - timedelta(hours=2)]
    assert to_keep(times, KeepPolicy(last=2)) == {t, t - timedelta(hours=1)}
    # the same instant written with another offset is the same archive time
    same = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert same == t
    kept = to_keep([t, same, t - timedelta(hours=1)], KeepPolicy(last=2))
    assert kept == {t, t - timedelta(hours=1)} and len(kept) == 2


def test_ties_between_tiers_are_one_archive() -> None:
    # One archive a day: last, daily, weekly and monthly all pick from the same archives.
    times = [utc(2026, 1, 1) + timedelta(days=i) for i in range(10)]
    kept = to_keep(times, KeepPolicy(last=2, daily=2, weekly=1, monthly=1))
    assert kept == {utc(2026, 1, 10), utc(2026, 1, 9)}


def test_days_without_archives_are_skipped_not_counted() -> None:
    times = [utc(2026, 1, 1, 9), utc(2026, 1, 1, 10), utc(2026, 1, 5, 9), utc(2026, 1, 20, 9)]
    kept = to_keep(times, KeepPolicy(daily=3))
    assert kept == {utc(2026, 1, 20, 9), utc(2026, 1, 5, 9), utc(2026, 1, 1, 10)}


def test_buckets_are_utc_days() -> None:
    minus2 = timezone(timedelta(hours=-2))
    a = utc(2026, 1, 1, 22)
    b = datetime(2026, 1, 1, 23, 30, tzinfo=minus2)  # 2026-01-02 01:30 UTC
    c = utc(2026, 1, 2, 0, 30)
    # UTC days: Jan 2 holds b and c (b newer), Jan 1 holds a.
    assert to_keep([a, b, c], KeepPolicy(daily=2)) == {a, b}
    assert to_keep([a, b, c], KeepPolicy(daily=1)) == {b}


def test_iso_weeks_span_years() -> None:
    sun_w52 = utc(2020, 12, 27, 12)  # Sunday, 2020-W52
    thu_w53 = utc(2020, 12, 31, 12)  # Thursday, 2020-W53
    sun_w53 = utc(2021, 1, 3, 12)  # Sunday, still 2020-W53
    mon_w01 = utc(2021, 1, 4, 12)  # Monday, 2021-W01
    times = [sun_w52, thu_w53, sun_w53, mon_w01]
    assert to_keep(times, KeepPolicy(weekly=2)) == {mon_w01, sun_w53}
    assert to_keep(times, KeepPolicy(weekly=3)) == {mon_w01, sun_w53, sun_w52}
    # by month, the year boundary splits them
    assert to_keep(times, KeepPolicy(monthly=2)) == {mon_w01, thu_w53}


def test_week_boundary_sunday_to_monday() -> None:
    sunday_late = utc(2026, 1, 11, 23, 59, 59)
    monday_early = utc(2026, 1, 12, 0, 0, 0)
    sunday_early = utc(2026, 1, 11, 0, 0, 1)
    times = [sunday_early, sunday_late, monday_early]
    assert to_keep(times, KeepPolicy(weekly=2)) == {monday_early, sunday_late}


def test_negative_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="keep.daily must be >= 0"):
        to_keep(YEAR, KeepPolicy(daily=-1))


def test_naive_times_are_an_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_keep([utc(2026, 1, 1), datetime(2026, 1, 2)], KeepPolicy())
    with pytest.raises(ValueError, match="timezone-aware"):
        to_keep([datetime(2026, 1, 2)], None)


def test_result_is_a_subset_of_the_input() -> None:
    policy = KeepPolicy(last=5, daily=9, weekly=7, monthly=5)
    kept = to_keep(YEAR[::7], policy)
    assert kept <= set(YEAR[::7])
