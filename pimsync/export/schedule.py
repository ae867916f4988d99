"""When an export is due, and what its archives are called.

Pure functions: no I/O, no clock (the caller passes ``now``), no local time zone. Every
datetime passed in must be timezone-aware (a naive one is a ValueError, never silently
read as local time); archive times are written and read in UTC.

Standard library only: :mod:`pimsync.config` imports :func:`parse_interval` and
:data:`ARCHIVE_FORMATS` from here on every run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = [
    "ARCHIVE_FORMATS",
    "DEFAULT_ARCHIVE_FORMAT",
    "INTERVAL_UNITS",
    "archive_name",
    "is_due",
    "is_temporary_name",
    "parse_archive_name",
    "parse_interval",
    "temporary_name",
]

#: The archive formats an export can write, as they appear in ``format =`` and as the
#: archive file's extension.
ARCHIVE_FORMATS: tuple[str, ...] = ("tar.gz", "zip")
DEFAULT_ARCHIVE_FORMAT = "tar.gz"

#: ``every = "..."`` units: letter -> length.
INTERVAL_UNITS: dict[str, timedelta] = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_INTERVAL_RE = re.compile(r"(?:[0-9]+[mhdw])+")
_INTERVAL_PART_RE = re.compile(r"([0-9]+)([mhdw])")
_INTERVAL_HELP = (
    "use a whole number followed by a unit m (minutes), h (hours), d (days) or w (weeks), "
    'or several of them, each unit at most once, like "30m", "6h", "1d", "2w" or "1d12h"'
)

_EXPORT_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_STAMP_RE = r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z"


def parse_interval(text: str) -> timedelta:
    """The length of an ``every = "..."`` interval.

    A whole number followed by one unit ``m`` (minutes), ``h`` (hours), ``d`` (days) or
    ``w`` (weeks), or several such parts written together, each unit at most once, in any
    order: ``"30m"``, ``"6h"``, ``"1d"``, ``"2w"``, ``"1d12h"`` (36 hours). No spaces, no
    signs, no fractions, lower-case units only. The total must be more than zero.

    Raises ValueError (whose message says what is allowed, with examples) otherwise.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string; {_INTERVAL_HELP}")
    if not _INTERVAL_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid interval; {_INTERVAL_HELP}")
    total = timedelta()
    seen: set[str] = set()
    try:
        for number, unit in _INTERVAL_PART_RE.findall(text):
            if unit in seen:
                raise ValueError(
                    f"{text!r} is not a valid interval: the unit {unit!r} appears twice; "
                    f"{_INTERVAL_HELP}"
                )
            seen.add(unit)
            total += int(number) * INTERVAL_UNITS[unit]
    except OverflowError as e:
        raise ValueError(f"{text!r} is too long an interval; {_INTERVAL_HELP}") from e
    if total <= timedelta():
        raise ValueError(
            f"{text!r} is not allowed: the interval must be more than 0; {_INTERVAL_HELP}"
        )
    return total


def _aware(what: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


def is_due(every: timedelta | None, last: datetime | None, now: datetime) -> bool:
    """Whether ``pimsync run`` should make a new archive for an export now.

    * ``every`` None (no ``every =`` in the config): never due automatically; archives are
      then made only by ``pimsync export``.
    * no archive made yet (``last`` None): due.
    * otherwise due when ``now - last >= every`` (exactly ``every`` after is due). An
      archive time in the future (the clock went back) is not due until ``now`` catches up.

    ``last`` and ``now`` must be timezone-aware (ValueError otherwise); they are compared as
    instants, so daylight-saving changes play no part.
    """
    _aware("now", now)
    if every is None:
        return False
    if every <= timedelta():
        raise ValueError(f"every must be more than 0, got {every!r}")
    if last is None:
        return True
    return now - _aware("last", last) >= every


def _check_export(export: str) -> None:
    if not isinstance(export, str) or not _EXPORT_NAME_RE.fullmatch(export):
        raise ValueError(
            f"{export!r} is not a valid export name; use only letters A-Z a-z, digits, '_' and '-'"
        )


def _stamp(when: datetime) -> str:
    t = _aware("when", when).astimezone(UTC)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z"


def archive_name(export: str, when: datetime, fmt: str) -> str:
    """The file name of the archive of *export* made at *when*:
    ``EXPORT-YYYYmmddTHHMMSSZ.FMT``, the time in UTC to the second (microseconds dropped),
    e.g. ``archive_name("nightly", 2026-01-02 03:04:05.6 UTC, "zip")`` ->
    ``"nightly-20260102T030405Z.zip"``.

    ValueError for an invalid export name (``[A-Za-z0-9_-]+``), a *fmt* not in
    :data:`ARCHIVE_FORMATS`, or a naive *when*.
    """
    _check_export(export)
    if fmt not in ARCHIVE_FORMATS:
        allowed = ", ".join(f'"{f}"' for f in ARCHIVE_FORMATS)
        raise ValueError(f"{fmt!r} is not an archive format; use one of {allowed}")
    return f"{export}-{_stamp(when)}.{fmt}"


def parse_archive_name(export: str, filename: str) -> datetime | None:
    """The time (UTC, aware, whole seconds) of the archive of *export* called *filename*,
    or None when *filename* is not a name :func:`archive_name` would give for *export* in
    any of the :data:`ARCHIVE_FORMATS`.

    Strict: another export's archives (``nightly-old-...`` is not ``nightly``'s), other time
    formats, an impossible date, a different case, a path instead of a bare name, and
    partial or temporary files (``...tar.gz.part``, ``....tmp``) all give None.
    ValueError for an invalid *export* name.
    """
    _check_export(export)
    if not isinstance(filename, str):
        return None
    formats = "|".join(re.escape(f) for f in ARCHIVE_FORMATS)
    m = re.fullmatch(rf"{re.escape(export)}-{_STAMP_RE}\.({formats})", filename)
    if m is None:
        return None
    try:
        when = datetime(*(int(g) for g in m.groups()[:6]), tzinfo=UTC)
    except ValueError:  # month 13, February 30, hour 24, leap second...
        return None
    if archive_name(export, when, m.group(7)) != filename:  # belt and braces
        return None
    return when


def temporary_name(export: str, when: datetime, fmt: str, pid: int, part: int | None = None) -> str:
    """The name of a temporary file of the export of *export* at *when* in process *pid*:
    ``.ARCHIVE.PID.tmp`` (the archive being written, :func:`archive_name` for ARCHIVE),
    or ``.ARCHIVE.PID.PART.tmp`` (a spool file, named only for an instant where the file
    system cannot make an unnamed one). ValueError as for :func:`archive_name`, or for a
    *pid* or *part* that is not a positive int."""
    for what, value in (("pid", pid), ("part", part)):
        if value is not None and (type(value) is not int or value <= 0):
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    middle = f"{pid}" if part is None else f"{pid}.{part}"
    return f".{archive_name(export, when, fmt)}.{middle}.tmp"


def is_temporary_name(export: str, filename: str) -> bool:
    """Whether *filename* is a name :func:`temporary_name` gives for *export* (any time,
    format, pid and part). As strict as :func:`parse_archive_name`: another export's
    temporaries, a name without the pid, with another suffix, a different case or an
    impossible time are not. ValueError for an invalid *export* name."""
    _check_export(export)
    if not isinstance(filename, str):
        return False
    formats = "|".join(re.escape(f) for f in ARCHIVE_FORMATS)
    stamp = _STAMP_RE.replace("(", "(?:")
    m = re.fullmatch(
        rf"\.({re.escape(export)}-{stamp}\.(?:{formats}))\.[1-9][0-9]*(?:\.[1-9][0-9]*)?\.tmp",
        filename,
    )
    return m is not None and parse_archive_name(export, m.group(1)) is not None
