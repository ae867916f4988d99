"""Tests for pimsync.export.schedule: intervals, when an export is due, archive names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from pimsync.export.schedule import (
    ARCHIVE_FORMATS,
    archive_name,
    is_due,
    is_temporary_name,
    parse_archive_name,
    parse_interval,
    temporary_name,
)

BERLIN_WINTER = timezone(timedelta(hours=1))
BERLIN_SUMMER = timezone(timedelta(hours=2))

# --------------------------------------------------------------------------- parse_interval


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1m", timedelta(minutes=1)),
        ("30m", timedelta(minutes=30)),
        ("90m", timedelta(minutes=90)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(hours=36)),
        ("12h1d", timedelta(hours=36)),
        ("1w2d3h4m", timedelta(weeks=1, days=2, hours=3, minutes=4)),
        ("0d6h", timedelta(hours=6)),
        ("007d", timedelta(days=7)),
        ("1000w", timedelta(weeks=1000)),
    ],
)
def test_parse_interval(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "d",
        "1 d",
        " 1d",
        "1d ",
        "1d 12h",
        "1d\n",
        "1D",
        "1H",
        "1s",
        "1y",
        "1mo",
        "-1d",
        "+1d",
        "1.5h",
        "1,5h",
        "1e3m",
        "d1",
        "1dh",
        "one day",
        "\u0661d",  # ARABIC-INDIC DIGIT ONE: not a digit here
        "\uff11d",  # FULLWIDTH DIGIT ONE
    ],
)
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_interval(text)
    msg = str(info.value)
    assert repr(text) in msg
    for example in ('"30m"', '"6h"', '"1d"', '"2w"', '"1d12h"'):
        assert example in msg
    assert "m (minutes), h (hours), d (days) or w (weeks)" in msg


@pytest.mark.parametrize("text", ["0m", "0d", "0d0h", "00w"])
def test_parse_interval_must_be_more_than_zero(text: str) -> None:
    with pytest.raises(ValueError, match="must be more than 0") as info:
        parse_interval(text)
    assert '"1d12h"' in str(info.value)


def test_parse_interval_unit_twice() -> None:
    with pytest.raises(ValueError, match="the unit 'd' appears twice"):
        parse_interval("1d1d")
    with pytest.raises(ValueError, match="the unit 'h' appears twice"):
        parse_interval("1h1d2h")


def test_parse_interval_too_long() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_interval("99999999999999999999w")


def test_parse_interval_not_a_string() -> None:
    with pytest.raises(ValueError, match='"1d12h"'):
        parse_interval(1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- is_due


LAST = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Europe moves to summer time


def test_never_made_is_due() -> None:
    assert is_due(timedelta(days=1), None, datetime(2026, 1, 1, tzinfo=UTC)) is True


def test_no_every_is_never_due() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_due(None, None, now) is False
    assert is_due(None, now - timedelta(weeks=520), now) is False


@pytest.mark.parametrize("every", ["1m", "30m", "6h", "1d", "1d12h", "1w", "2w"])
def test_due_exactly_at_every(every: str) -> None:
    interval = parse_interval(every)
    with freeze_time(LAST) as clock:
        assert is_due(interval, LAST, datetime.now(UTC)) is False  # just made
        clock.tick(interval - timedelta(seconds=1))
        assert is_due(interval, LAST, datetime.now(UTC)) is False
        clock.tick(timedelta(milliseconds=999))
        assert is_due(interval, LAST, datetime.now(UTC)) is False
        clock.tick(timedelta(milliseconds=1))
        assert datetime.now(UTC) - LAST == interval
        assert is_due(interval, LAST, datetime.now(UTC)) is True
        clock.tick(timedelta(seconds=1))
        assert is_due(interval, LAST, datetime.now(UTC)) is True
        clock.tick(timedelta(weeks=100))
        assert is_due(interval, LAST, datetime.now(UTC)) is True


def test_due_compares_instants_not_wall_clocks() -> None:
    # Across the spring DST change a "day" on the wall clock in Berlin is 23 hours: noon to
    # noon is not yet a day, so not due; the offsets play no part, only the instants do.
    last = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN_WINTER)  # 11:00 UTC
    day = timedelta(days=1)
    with freeze_time(datetime(2026, 3, 29, 10, 0, tzinfo=UTC)):  # 12:00 summer time
        now = datetime.now(UTC).astimezone(BERLIN_SUMMER)
        assert now.hour == 12 and now.day == 29
        assert is_due(day, last, now) is False
    with freeze_time(datetime(2026, 3, 29, 11, 0, tzinfo=UTC)):  # 13:00 summer time
        assert is_due(day, last, datetime.now(BERLIN_SUMMER)) is True
        assert is_due(day, last, datetime.now(UTC)) is True


def test_last_in_the_future_is_not_due() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_due(timedelta(minutes=1), now + timedelta(hours=1), now) is False


def test_is_due_rejects_naive_datetimes() -> None:
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due(timedelta(days=1), naive, aware)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due(timedelta(days=1), aware, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due(None, None, naive)


def test_is_due_rejects_non_positive_every() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="more than 0"):
        is_due(timedelta(0), now, now)


# --------------------------------------------------------------------------- archive names


def test_archive_name() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    assert archive_name("nightly", when, "tar.gz") == "nightly-20260102T030405Z.tar.gz"
    assert archive_name("nightly", when, "zip") == "nightly-20260102T030405Z.zip"
    assert archive_name("a_b-C9", when, "zip") == "a_b-C9-20260102T030405Z.zip"


def test_archive_name_is_in_utc() -> None:
    when = datetime(2026, 1, 1, 1, 30, tzinfo=BERLIN_SUMMER)
    assert archive_name("nightly", when, "zip") == "nightly-20251231T233000Z.zip"


def test_archive_name_pads_small_years() -> None:
    when = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = archive_name("x", when, "zip")
    assert name == "x-09990102T030405Z.zip"
    assert parse_archive_name("x", name) == when


@pytest.mark.parametrize(
    ("export", "when", "fmt", "match"),
    [
        ("my export", datetime(2026, 1, 1, tzinfo=UTC), "zip", "not a valid export name"),
        ("", datetime(2026, 1, 1, tzinfo=UTC), "zip", "not a valid export name"),
        ("a/b", datetime(2026, 1, 1, tzinfo=UTC), "zip", "not a valid export name"),
        ("nightly", datetime(2026, 1, 1, tzinfo=UTC), "tar", "not an archive format"),
        ("nightly", datetime(2026, 1, 1, tzinfo=UTC), ".zip", "not an archive format"),
        ("nightly", datetime(2026, 1, 1), "zip", "timezone-aware"),
    ],
)
def test_archive_name_rejects(export: str, when: datetime, fmt: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        archive_name(export, when, fmt)


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
@pytest.mark.parametrize("export", ["nightly", "n", "weekly-old", "A_1"])
@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN_SUMMER),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_archive_name_round_trip(export: str, when: datetime, fmt: str) -> None:
    name = archive_name(export, when, fmt)
    parsed = parse_archive_name(export, name)
    assert parsed == when.replace(microsecond=0)
    assert parsed is not None and parsed.tzinfo is UTC
    assert archive_name(export, parsed, fmt) == name


@pytest.mark.parametrize(
    ("export", "filename"),
    [
        # another export's archives
        ("nightly", "weekly-20260101T000000Z.tar.gz"),
        ("nightly", "nightly-old-20260101T000000Z.tar.gz"),
        ("nightly-old", "nightly-20260101T000000Z.tar.gz"),
        ("night", "nightly-20260101T000000Z.tar.gz"),
        ("nightly", "Nightly-20260101T000000Z.tar.gz"),
        ("nightly", "NIGHTLY-20260101T000000Z.tar.gz"),
        ("nightly", "nightly_20260101T000000Z.tar.gz"),
        ("nightly", "nightly20260101T000000Z.tar.gz"),
        ("nightly", "-20260101T000000Z.tar.gz"),
        # partial, temporary and hidden files
        ("nightly", "nightly-20260101T000000Z.tar.gz.part"),
        ("nightly", "nightly-20260101T000000Z.tar.gz.tmp"),
        ("nightly", "nightly-20260101T000000Z.zip.tmp"),
        ("nightly", "nightly-20260101T000000Z.tmp"),
        ("nightly", ".nightly-20260101T000000Z.tar.gz.tmp"),
        ("nightly", ".nightly-20260101T000000Z.tar.gz"),
        ("nightly", "nightly-20260101T000000Z.tar.gz~"),
        ("nightly", "nightly-20260101T000000Z.tar.gz "),
        ("nightly", "nightly-20260101T000000Z.tar.gz\n"),
        ("nightly", ""),
        # other time formats
        ("nightly", "nightly-2026-01-01T00:00:00Z.tar.gz"),
        ("nightly", "nightly-20260101T000000.tar.gz"),
        ("nightly", "nightly-20260101T0000Z.tar.gz"),
        ("nightly", "nightly-20260101T00000000Z.tar.gz"),
        ("nightly", "nightly-202601010T00000Z.tar.gz"),
        ("nightly", "nightly-20260101000000Z.tar.gz"),
        ("nightly", "nightly-20260101t000000z.tar.gz"),
        ("nightly", "nightly-20260101T000000+0000.tar.gz"),
        ("nightly", "nightly-20260101T000000.123Z.tar.gz"),
        ("nightly", "nightly-20260101T000000123Z.tar.gz"),
        ("nightly", "nightly-1767225600.tar.gz"),
        ("nightly", "nightly-20260101.tar.gz"),
        ("nightly", "nightly-\uff12\uff10\uff12\uff160101T000000Z.tar.gz"),  # fullwidth digits
        # impossible dates and times
        ("nightly", "nightly-20261301T000000Z.tar.gz"),
        ("nightly", "nightly-20260230T000000Z.tar.gz"),
        ("nightly", "nightly-20250229T000000Z.tar.gz"),
        ("nightly", "nightly-20260100T000000Z.tar.gz"),
        ("nightly", "nightly-20260101T240000Z.tar.gz"),
        ("nightly", "nightly-20260101T006000Z.tar.gz"),
        ("nightly", "nightly-20261231T235960Z.tar.gz"),
        ("nightly", "nightly-00000101T000000Z.tar.gz"),
        # other extensions
        ("nightly", "nightly-20260101T000000Z"),
        ("nightly", "nightly-20260101T000000Z."),
        ("nightly", "nightly-20260101T000000Z.tar"),
        ("nightly", "nightly-20260101T000000Z.tgz"),
        ("nightly", "nightly-20260101T000000Z.gz"),
        ("nightly", "nightly-20260101T000000Z.TAR.GZ"),
        ("nightly", "nightly-20260101T000000Z.ZIP"),
        ("nightly", "nightly-20260101T000000Z.tar.bz2"),
        ("nightly", "nightly-20260101T000000Z.zip.tar.gz"),
        ("nightly", "nightly-20260101T000000Z.tar.gz.zip"),
        ("nightly", "nightly-20260101T000000Ztar.gz"),
        ("nightly", "nightly-20260101T000000Z.tarxgz"),
        # paths, not names
        ("nightly", "backups/nightly-20260101T000000Z.tar.gz"),
        ("nightly", "/nightly-20260101T000000Z.tar.gz"),
    ],
)
def test_parse_archive_name_rejects_foreign_names(export: str, filename: str) -> None:
    assert parse_archive_name(export, filename) is None


def test_parse_archive_name_both_formats() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_archive_name("nightly", "nightly-20260101T000000Z.tar.gz") == when
    assert parse_archive_name("nightly", "nightly-20260101T000000Z.zip") == when


def test_parse_archive_name_rejects_invalid_export() -> None:
    with pytest.raises(ValueError, match="not a valid export name"):
        parse_archive_name("night.ly", "night.ly-20260101T000000Z.tar.gz")
    with pytest.raises(ValueError, match="not a valid export name"):
        parse_archive_name(".*", "x-20260101T000000Z.tar.gz")


# --------------------------------------------------------------------------- temporary names

WHEN = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def test_temporary_name() -> None:
    assert temporary_name("nightly", WHEN, "tar.gz", 123) == (
        ".nightly-20260102T030405Z.tar.gz.123.tmp"
    )
    assert (
        temporary_name("nightly", WHEN, "zip", 123, 4) == ".nightly-20260102T030405Z.zip.123.4.tmp"
    )
    for fmt in ARCHIVE_FORMATS:
        for part in (None, 1, 99):
            name = temporary_name("n-1_x", WHEN, fmt, 4242, part)
            assert is_temporary_name("n-1_x", name)
            assert parse_archive_name("n-1_x", name) is None  # never taken for an archive


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, "1"])
def test_temporary_name_rejects_a_bad_pid_or_part(bad: object) -> None:
    with pytest.raises(ValueError):
        temporary_name("nightly", WHEN, "zip", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        temporary_name("nightly", WHEN, "zip", 1, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "filename",
    [
        ".nightly-x.tar.gz.tmp",
        ".nightly-20260102T030405Z.tar.gz.tmp",  # no pid
        ".nightly-old-20260102T030405Z.tar.gz.5.tmp",  # another export's
        "nightly-20260102T030405Z.tar.gz.5.tmp",  # not hidden
        ".Nightly-20260102T030405Z.tar.gz.5.tmp",
        ".nightly-20260102T030405Z.TAR.GZ.5.tmp",
        ".nightly-20260102T030405Z.tar.gz.05.tmp",
        ".nightly-20260102T030405Z.tar.gz.5.tmp.bak",
        ".nightly-20260102T030405Z.tar.gz.5.6.7.tmp",
        ".nightly-20260102T030405Z.tar.bz2.5.tmp",
        ".nightly-20261302T030405Z.tar.gz.5.tmp",  # month 13
        ".nightly-20260102T030405Z.tar.gz.x.tmp",
        "sub/.nightly-20260102T030405Z.tar.gz.5.tmp",
        "nightly-20260102T030405Z.tar.gz",  # the archive itself
    ],
)
def test_is_temporary_name_is_strict(filename: str) -> None:
    assert not is_temporary_name("nightly", filename)


def test_is_temporary_name_rejects_invalid_export() -> None:
    with pytest.raises(ValueError):
        is_temporary_name("bad name", ".x")
    assert not is_temporary_name("nightly", None)  # type: ignore[arg-type]
