"""Which archives of an export to keep (``keep = {...}``). Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime

from pimsync.config import KeepPolicy

__all__ = ["to_keep"]


def _day(t: datetime) -> Hashable:
    return t.date()


def _iso_week(t: datetime) -> Hashable:
    year, week, _ = t.isocalendar()
    return (year, week)


def _month(t: datetime) -> Hashable:
    return (t.year, t.month)


_TIERS: tuple[tuple[str, Callable[[datetime], Hashable]], ...] = (
    ("daily", _day),
    ("weekly", _iso_week),
    ("monthly", _month),
)


def to_keep(times: Sequence[datetime], policy: KeepPolicy | None) -> set[datetime]:
    """The archive times (out of *times*) whose archives are kept; the others may go.

    Archives are identified by their time; times are timezone-aware (ValueError for a naive
    one) and bucketed in UTC. Equal times (the same instant) count as one archive. The kept
    set is the union of:

    * the newest archive, always (even when every count is 0, so that an export never
      deletes its last archive);
    * ``last``: the newest ``last`` archives;
    * ``daily``: of the newest ``daily`` UTC calendar days that have archives, the newest
      archive of each day (days without archives are skipped, not counted);
    * ``weekly``: likewise for ISO weeks (Monday to Sunday, UTC);
    * ``monthly``: likewise for calendar months (UTC).

    *policy* None (no ``keep =`` in the config) keeps every archive. No times: an empty set.
    A negative count is a ValueError.

    Example: archives at 06:00 and 18:00 UTC on 1, 2 and 3 March, and at 18:00 on 28
    February, with ``KeepPolicy(last=2, daily=2, monthly=2)``:

    * ``last=2`` keeps 3 March 18:00 and 3 March 06:00;
    * ``daily=2`` keeps the newest of 3 March and of 2 March: 3 March 18:00, 2 March 18:00;
    * ``monthly=2`` keeps the newest of March and of February: 3 March 18:00, 28 Feb 18:00;

    so 4 are kept (3 March 18:00 and 06:00, 2 March 18:00, 28 February 18:00) and 3 may go
    (2 March 06:00, 1 March 18:00, 1 March 06:00).
    """
    for t in times:
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"archive times must be timezone-aware datetimes, got {t!r}")
    if policy is None:
        return set(times)
    for name in ("last", "daily", "weekly", "monthly"):
        if getattr(policy, name) < 0:
            raise ValueError(f"keep.{name} must be >= 0, got {getattr(policy, name)!r}")
    newest_first = sorted(set(times), reverse=True)
    if not newest_first:
        return set()
    keep = {newest_first[0]}
    keep.update(newest_first[: policy.last])
    for name, bucket_of in _TIERS:
        count: int = getattr(policy, name)
        buckets: set[Hashable] = set()
        for t in newest_first:
            if len(buckets) >= count:
                break
            bucket = bucket_of(t.astimezone(UTC))
            if bucket not in buckets:
                buckets.add(bucket)
                keep.add(t)  # the first seen in a bucket is its newest
    return keep
