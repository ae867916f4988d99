"""Hypothesis strategies: small events (with overrides and alarms) and cards (vCard 2.1,
3.0, 4.0) built from random property sets, and random edits of them."""

from __future__ import annotations

import copy
import quopri
from dataclasses import dataclass, field

from hypothesis import strategies as st

from pimsync.model.lines import fold
from pimsync.model.record import Record
from tests.merge.helpers import UID, record

TEXTS = ["Room 1", "Room 2", "Hall", "Café ü", "a\\, b\\; c", "Planning", "Review", "x" * 90]
TIMES = ["20261104T090000Z", "20261104T093000Z", "20261104T100000Z"]
ENDS = ["20261104T110000Z", "20261104T113000Z"]
RIDS = ["20261111T093000Z", "20261118T093000Z", "20261125T093000Z"]
EXDATES = ["20261202T093000Z", "20261209T093000Z", "20261216T093000Z", "20261223T093000Z"]
PEOPLE = ["ann", "bob", "carol", "dave", "eve"]
PARTSTATS = ["ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION"]
CATEGORIES = ["work", "home", "urgent", "later", "a\\,b"]
TAGS = ["red", "green", "blue"]
TRIGGERS = ["-PT5M", "-PT15M", "-PT1H", "-P1D"]

EVENT_SINGLES: dict[str, list[str]] = {
    "SUMMARY": TEXTS,
    "LOCATION": TEXTS,
    "DESCRIPTION": TEXTS,
    "STATUS": ["CONFIRMED", "TENTATIVE", "CANCELLED"],
    "PRIORITY": ["1", "5", "9"],
    "CLASS": ["PUBLIC", "PRIVATE"],
    "TRANSP": ["OPAQUE", "TRANSPARENT"],
    "URL": ["https://example.com/a", "https://example.com/b"],
    "DTSTART": TIMES,
    "DTEND": ENDS,
    "RRULE": ["FREQ=WEEKLY;COUNT=10", "FREQ=WEEKLY;INTERVAL=2", "FREQ=DAILY;COUNT=3"],
}
REQUIRED = frozenset({"DTSTART", "FN"})


@dataclass
class Comp:
    """One component: ordered ``[head, value]`` property lines and sub-component texts."""

    props: list[list[str]]
    children: list[str] = field(default_factory=list)

    def find(self, name: str) -> int | None:
        for index, (head, _value) in enumerate(self.props):
            if head.split(";")[0] == name:
                return index
        return None

    def indexes(self, name: str) -> list[int]:
        return [i for i, (head, _v) in enumerate(self.props) if head.split(";")[0] == name]


@dataclass
class EventModel:
    master: Comp
    overrides: dict[str, Comp]
    stamp: str = "20261101T000000Z"

    def render(self, rewritten: bool = False) -> Record:
        """The record; ``rewritten``: as a server might write it back (other folding,
        parameter order, name case): a different text with the same hash."""
        blocks = [_vevent(self.master, None, self.stamp, rewritten)]
        blocks.extend(
            _vevent(comp, rid, self.stamp, rewritten) for rid, comp in self.overrides.items()
        )
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//pimsync tests//merge//EN", *blocks,
                 "END:VCALENDAR"]  # fmt: skip
        return record("\n".join(lines), "ics")


def _fold(line: str, rewritten: bool = False) -> str:
    if not rewritten:
        return "\n".join(fold(line))
    head, sep, value = line.partition(":")
    name, *params = head.split(";")
    return "\n".join(fold(";".join([name.lower(), *reversed(params)]) + sep + value, 30))


def _vevent(comp: Comp, rid: str | None, stamp: str, rewritten: bool = False) -> str:
    lines = ["BEGIN:VEVENT", f"UID:{UID}", f"DTSTAMP:{stamp}"]
    if rid is not None:
        lines.append(f"RECURRENCE-ID:{rid}")
    lines.extend(_fold(f"{head}:{value}", rewritten) for head, value in comp.props)
    lines.extend(comp.children)
    lines.append("END:VEVENT")
    return "\n".join(lines)


def alarm(trigger: str) -> str:
    return "\n".join(
        ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", f"TRIGGER:{trigger}",
         "END:VALARM"]
    )  # fmt: skip


def attendee(person: str, partstat: str) -> list[str]:
    return [f"ATTENDEE;CN={person.title()};PARTSTAT={partstat}", f"mailto:{person}@example.com"]


@st.composite
def events(draw: st.DrawFn) -> EventModel:
    props: list[list[str]] = [["DTSTART", draw(st.sampled_from(TIMES))]]
    for name in draw(st.lists(st.sampled_from(sorted(EVENT_SINGLES)), unique=True, max_size=5)):
        if name != "DTSTART":
            props.append([name, draw(st.sampled_from(EVENT_SINGLES[name]))])
    for person in draw(st.lists(st.sampled_from(PEOPLE), unique=True, max_size=3)):
        props.append(attendee(person, draw(st.sampled_from(PARTSTATS))))
    cats = draw(st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=3))
    if cats:
        props.append(["CATEGORIES", ",".join(cats)])
    exdates = draw(st.lists(st.sampled_from(EXDATES), unique=True, max_size=2))
    if exdates:
        props.append(["EXDATE", ",".join(exdates)])
    props.extend(["X-TAG", tag] for tag in draw(st.lists(st.sampled_from(TAGS), max_size=2)))
    if draw(st.booleans()):
        props.append(["SEQUENCE", str(draw(st.integers(0, 3)))])
    alarms = [alarm(t) for t in draw(st.lists(st.sampled_from(TRIGGERS), unique=True, max_size=2))]
    overrides: dict[str, Comp] = {}
    for rid in draw(st.lists(st.sampled_from(RIDS), unique=True, max_size=2)):
        overrides[rid] = Comp([["DTSTART", rid], ["SUMMARY", draw(st.sampled_from(TEXTS))]])
    return EventModel(Comp(props, alarms), overrides)


def _edit_list(draw: st.DrawFn, comp: Comp, name: str, pool: list[str]) -> None:
    """Add a value to (or remove one from) a list property such as CATEGORIES."""
    index = comp.find(name)
    values = comp.props[index][1].split(",") if index is not None else []
    values = [v for v in _rejoin(values)]
    missing = [v for v in pool if v not in values]
    if missing and (not values or draw(st.booleans())):
        values.append(draw(st.sampled_from(missing)))
    elif values:
        values.remove(draw(st.sampled_from(values)))
    if index is not None and values:
        comp.props[index][1] = ",".join(values)
    elif index is not None:
        del comp.props[index]
    elif values:
        comp.props.append([name, ",".join(values)])


def _rejoin(pieces: list[str]) -> list[str]:
    """Values split at every comma, joined again where the comma was escaped."""
    out: list[str] = []
    for piece in pieces:
        if out and out[-1].endswith("\\"):
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


EVENT_OPS = ["set", "del", "att+", "att-", "partstat", "cat", "exdate", "tag+", "tag-",
             "alarm+", "alarm-"]  # fmt: skip
TARGETS = ["master", "override", "add", "delete"]


@dataclass(frozen=True)
class Focus:
    """What the edits of one example touch: both sides draw from the same few kinds of
    edit and properties, so that they often meet (conflicts, item merges)."""

    ops: tuple[str, ...]
    names: tuple[str, ...]
    targets: tuple[str, ...] = ("master",)


@st.composite
def event_focus(draw: st.DrawFn) -> Focus:
    ops = draw(st.lists(st.sampled_from(EVENT_OPS), min_size=1, max_size=3, unique=True))
    names = draw(st.lists(st.sampled_from(sorted(EVENT_SINGLES)), min_size=1, max_size=3))
    targets = draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=3, unique=True))
    return Focus(tuple(ops), tuple(names), tuple(targets))


def _edit_event_comp(
    draw: st.DrawFn, comp: Comp, singles: dict[str, list[str]], focus: Focus
) -> None:
    op = draw(st.sampled_from(focus.ops))
    if op == "set":
        names = [n for n in focus.names if n in singles] or sorted(singles)
        name = draw(st.sampled_from(names))
        value = draw(st.sampled_from(singles[name]))
        index = comp.find(name)
        if index is None:
            comp.props.append([name, value])
        else:
            comp.props[index][1] = value
    elif op == "del":
        present = [n for n in singles if n not in REQUIRED and comp.find(n) is not None]
        if present:
            del comp.props[comp.find(draw(st.sampled_from(present))) or 0]
    elif op == "att+":
        have = {value for head, value in comp.props if head.startswith("ATTENDEE")}
        missing = [p for p in PEOPLE if f"mailto:{p}@example.com" not in have]
        if missing:
            comp.props.append(attendee(draw(st.sampled_from(missing)), "NEEDS-ACTION"))
    elif op in ("att-", "partstat"):
        indexes = comp.indexes("ATTENDEE")
        if indexes:
            index = draw(st.sampled_from(indexes))
            if op == "att-":
                del comp.props[index]
            else:
                person = comp.props[index][1][7:].split("@")[0]
                comp.props[index] = attendee(person, draw(st.sampled_from(PARTSTATS)))
    elif op == "cat":
        _edit_list(draw, comp, "CATEGORIES", CATEGORIES)
    elif op == "exdate":
        _edit_list(draw, comp, "EXDATE", EXDATES)
    elif op == "tag+":
        comp.props.append(["X-TAG", draw(st.sampled_from(TAGS))])
    elif op == "tag-":
        indexes = comp.indexes("X-TAG")
        if indexes:
            del comp.props[draw(st.sampled_from(indexes))]
    elif op == "alarm+":
        comp.children.append(alarm(draw(st.sampled_from(TRIGGERS))))
    elif comp.children:  # alarm-
        del comp.children[draw(st.integers(0, len(comp.children) - 1))]


OVERRIDE_SINGLES = {"SUMMARY": TEXTS, "LOCATION": TEXTS, "DESCRIPTION": TEXTS, "DTSTART": TIMES}


@st.composite
def edited_event(draw: st.DrawFn, base: EventModel, focus: Focus) -> EventModel:
    """``base`` after 1 to 4 random edits (master, overrides, override added/deleted)."""
    model = copy.deepcopy(base)
    model.stamp = draw(st.sampled_from(["20261102T000000Z", "20261103T000000Z"]))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(focus.targets))
        if target == "master":
            _edit_event_comp(draw, model.master, EVENT_SINGLES, focus)
        elif target == "override" and model.overrides:
            rid = draw(st.sampled_from(sorted(model.overrides)))
            _edit_event_comp(draw, model.overrides[rid], OVERRIDE_SINGLES, focus)
        elif target == "add":
            free = [r for r in RIDS if r not in model.overrides]
            if free:
                rid = draw(st.sampled_from(free))
                summary = draw(st.sampled_from(TEXTS))
                model.overrides[rid] = Comp([["DTSTART", rid], ["SUMMARY", summary]])
        elif target == "delete" and model.overrides:
            del model.overrides[draw(st.sampled_from(sorted(model.overrides)))]
    return model


# ---------------------------------------------------------------------------- cards

CARD_SINGLES: dict[str, list[str]] = {
    "FN": ["Ann Example", "Ann B. Example", "Annie"],
    "N": ["Example;Ann;;;", "Example;Ann;B.;;", "Example;Annie;;;"],
    "ORG": ["Example Corp", "Example Inc;Research"],
    "TITLE": ["Engineer", "Manager"],
    "NOTE": TEXTS,
    "BDAY": ["19800101", "19810202"],
    "NICKNAME": ["annie", "a"],
}
NUMBERS = ["+1-555-0100", "+1-555-0101", "+1-555-0102", "+1-555-0103"]
ADDRESSES = ["ann@example.com", "ann@work.example", "a@home.example"]
TEL_TYPES = [("CELL",), ("HOME",), ("WORK", "VOICE"), ("FAX",)]
EMAIL_TYPES = [("INTERNET",), ("INTERNET", "HOME"), ("WORK",)]
STREETS = [";;Main Street 1;Springfield;;12345;USA", ";;Elm Street 2;Shelbyville;;54321;USA"]


@dataclass
class CardProp:
    name: str
    value: str
    types: tuple[str, ...] = ()
    pref: bool = False


@dataclass
class CardModel:
    version: str
    props: list[CardProp]
    rev: str = "20260101T000000Z"

    def render(self, rewritten: bool = False) -> Record:
        """The card; ``rewritten``: other folding, parameter order and name case."""
        lines = ["BEGIN:VCARD", f"VERSION:{self.version}", f"UID:{UID}", f"REV:{self.rev}"]
        lines.extend(self._line(p, rewritten) for p in self.props)
        lines.append("END:VCARD")
        return record("\n".join(lines), "vcf")

    def _line(self, prop: CardProp, rewritten: bool) -> str:
        head = prop.name
        if self.version == "2.1":
            head += "".join(";" + t for t in prop.types) + (";PREF" if prop.pref else "")
        elif prop.types or prop.pref:
            types = [t.lower() if self.version == "4.0" else t for t in prop.types]
            if prop.pref and self.version == "3.0":
                types.append("PREF")
            if types:
                head += ";TYPE=" + ",".join(types)
            if prop.pref and self.version == "4.0":
                head += ";PREF=1"
        value = prop.value
        if self.version == "2.1" and not value.isascii():  # quoted-printable, soft breaks
            encoded = quopri.encodestring(value.encode()).decode().replace("\n", "")
            pieces = [encoded[i : i + 12] for i in range(0, len(encoded), 12)]
            return head + ";ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:" + "=\n".join(pieces)
        return _fold(f"{head}:{value}", rewritten)


def _props(model: CardModel, name: str) -> list[int]:
    return [i for i, p in enumerate(model.props) if p.name == name]


@st.composite
def cards(draw: st.DrawFn) -> CardModel:
    version = draw(st.sampled_from(["2.1", "3.0", "4.0"]))
    props = [CardProp("FN", draw(st.sampled_from(CARD_SINGLES["FN"])))]
    for name in draw(st.lists(st.sampled_from(sorted(CARD_SINGLES)), unique=True, max_size=4)):
        if name != "FN":
            props.append(CardProp(name, draw(st.sampled_from(CARD_SINGLES[name]))))
    for number in draw(st.lists(st.sampled_from(NUMBERS), unique=True, max_size=2)):
        props.append(CardProp("TEL", number, draw(st.sampled_from(TEL_TYPES))))
    for address in draw(st.lists(st.sampled_from(ADDRESSES), unique=True, max_size=2)):
        props.append(CardProp("EMAIL", address, draw(st.sampled_from(EMAIL_TYPES))))
    if draw(st.booleans()):
        props.append(CardProp("ADR", draw(st.sampled_from(STREETS)), ("HOME",)))
    cats = draw(st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=3))
    if cats:
        props.append(CardProp("CATEGORIES", ",".join(cats)))
    return CardModel(version, props)


CARD_OPS = ["set", "del", "tel+", "tel-", "tel-type", "tel-value", "email+", "email-",
            "pref", "adr", "cat", "tag+", "tag-"]  # fmt: skip


@st.composite
def card_focus(draw: st.DrawFn) -> Focus:
    ops = draw(st.lists(st.sampled_from(CARD_OPS), min_size=1, max_size=3, unique=True))
    names = draw(st.lists(st.sampled_from(sorted(CARD_SINGLES)), min_size=1, max_size=3))
    return Focus(tuple(ops), tuple(names))


@st.composite
def edited_card(draw: st.DrawFn, base: CardModel, focus: Focus) -> CardModel:
    model = copy.deepcopy(base)
    model.rev = draw(st.sampled_from(["20260102T000000Z", "20260103T000000Z"]))
    for _ in range(draw(st.integers(1, 4))):
        _edit_card(draw, model, draw(st.sampled_from(focus.ops)), focus)
    return model


def _edit_card(draw: st.DrawFn, model: CardModel, op: str, focus: Focus) -> None:
    props = model.props
    if op == "set":
        name = draw(st.sampled_from(focus.names))
        value = draw(st.sampled_from(CARD_SINGLES[name]))
        found = _props(model, name)
        if found:
            props[found[0]].value = value
        else:
            props.append(CardProp(name, value))
    elif op == "del":
        present = [i for i, p in enumerate(props) if p.name in CARD_SINGLES and p.name != "FN"]
        if present:
            del props[draw(st.sampled_from(present))]
    elif op in ("tel+", "email+"):
        name, pool, types = (
            ("TEL", NUMBERS, TEL_TYPES) if op == "tel+" else ("EMAIL", ADDRESSES, EMAIL_TYPES)
        )
        have = {p.value for p in props if p.name == name}
        missing = [v for v in pool if v not in have]
        if missing:
            props.append(
                CardProp(name, draw(st.sampled_from(missing)), draw(st.sampled_from(types)))
            )
    elif op in ("tel-", "email-", "tel-type", "tel-value", "pref"):
        name = "EMAIL" if op in ("email-", "pref") else "TEL"
        found = _props(model, name)
        if not found:
            return
        prop = props[draw(st.sampled_from(found))]
        if op in ("tel-", "email-"):
            props.remove(prop)
        elif op == "tel-type":
            prop.types = draw(st.sampled_from(TEL_TYPES))
        elif op == "tel-value":
            have = {p.value for p in props if p.name == "TEL"}
            free = [n for n in NUMBERS if n not in have]
            if free:
                prop.value = draw(st.sampled_from(free))
        else:
            prop.pref = not prop.pref
    elif op == "adr":
        found = _props(model, "ADR")
        if found and draw(st.booleans()):
            del props[found[0]]
        elif found:
            props[found[0]].value = draw(st.sampled_from(STREETS))
        else:
            props.append(CardProp("ADR", draw(st.sampled_from(STREETS)), ("HOME",)))
    elif op == "cat":
        found = _props(model, "CATEGORIES")
        comp = Comp([["CATEGORIES", props[found[0]].value]] if found else [])
        _edit_list(draw, comp, "CATEGORIES", CATEGORIES)
        if found and comp.props:
            props[found[0]].value = comp.props[0][1]
        elif found:
            del props[found[0]]
        elif comp.props:
            props.append(CardProp("CATEGORIES", comp.props[0][1]))
    elif op == "tag+":
        props.append(CardProp("X-TAG", draw(st.sampled_from(TAGS))))
    else:  # tag-
        found = _props(model, "X-TAG")
        if found:
            del props[draw(st.sampled_from(found))]
