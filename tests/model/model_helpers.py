"""Shared helpers for the model tests: the corpus and an independent view of a file's
content (unfolded with a few lines of code of its own, split with vobject's parseLine)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from vobject.base import parseLine

CORPUS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus").resolve()


def index_rows() -> list[dict[str, str]]:
    """INDEX.tsv as dicts (file, kind, producer, features, well_formed)."""
    lines = (CORPUS / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line]


def well_formed() -> list[tuple[str, str]]:
    return [(r["file"], r["kind"]) for r in index_rows() if r["well_formed"] == "yes"]


def malformed() -> list[tuple[str, str]]:
    return [(r["file"], r["kind"]) for r in index_rows() if r["well_formed"] == "no"]


def unfold(data: bytes) -> list[str]:
    """Logical lines, the way vobject's reader finds them (folding, QP soft breaks)."""
    text = data.decode("utf-8", "surrogateescape")
    lines: list[str] = []
    current: str | None = None
    qp = False
    for phys in re.split(r"\r\n|\n", text):
        if phys == "":  # a blank line ends a logical line
            if current is not None:
                lines.append(current)
            current = None
            continue
        if current is not None and qp:
            current = current[:-1] + phys
        elif current is not None and phys[0] in " \t":
            current += phys[1:]
        else:
            if current is not None:
                lines.append(current)
            current = phys
        qp = current.endswith("=") and "QUOTED-PRINTABLE" in current.upper()
    if current is not None:
        lines.append(current)
    return lines


Entry = tuple[tuple[str, ...], str, tuple[tuple[str, tuple[str, ...]], ...], str]


def content(data: bytes) -> tuple[Counter[Entry], dict[str, Counter[Entry]]]:
    """The multiset of (component path, property name, params, value) outside VTIMEZONEs,
    and each VTIMEZONE's own multiset by TZID (first one wins, as join deduplicates).
    Top-level lines outside every component count as VCALENDAR-level ones (split keeps
    them in the wrapper)."""
    main: Counter[Entry] = Counter()
    timezones: dict[str, Counter[Entry]] = {}
    path: list[str] = []
    tz: Counter[Entry] | None = None
    for line in unfold(data):
        name, params, value, _group = parseLine(line)
        upper = name.upper()
        if upper == "BEGIN":
            path.append(value.strip().upper())
            if path[-1] == "VTIMEZONE" and tz is None:
                tz = Counter()
            continue
        if upper == "END":
            if path.pop() == "VTIMEZONE":
                tzid = next(e[3] for e in tz if e[1] == "TZID")  # type: ignore[union-attr]
                timezones.setdefault(tzid, tz)  # type: ignore[arg-type]
                tz = None
            continue
        where = tuple(path) if path else ("VCALENDAR",)
        entry = (
            where,
            upper,
            tuple(sorted((p[0].upper(), tuple(p[1:])) for p in params)),
            value,
        )
        (tz if tz is not None else main)[entry] += 1
    return main, timezones
