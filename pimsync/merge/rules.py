"""How each property merges: the tables behind the rules of a three-way merge."""

from __future__ import annotations

#: Multi-valued iCalendar properties: merged as sets of items.
ICS_SETS = frozenset(
    {
        "ATTENDEE",
        "CATEGORIES",
        "RESOURCES",
        "EXDATE",
        "RDATE",
        "EXRULE",
        "FREEBUSY",
        "COMMENT",
        "CONTACT",
        "ATTACH",
        "RELATED-TO",
        "REQUEST-STATUS",
        "IMAGE",
        "CONFERENCE",
    }
)
#: Multi-valued vCard properties (2.1, 3.0 and 4.0).
VCF_SETS = frozenset({"EMAIL", "TEL", "ADR", "URL", "IMPP", "CATEGORIES", "MEMBER", "RELATED"})
#: Properties whose value is a comma-separated list: one item per value. (EXDATE, RDATE
#: and FREEBUSY values are split by the canonical form already.)
ICS_LISTS = frozenset({"CATEGORIES", "RESOURCES", "EXDATE", "RDATE", "FREEBUSY"})
VCF_LISTS = frozenset({"CATEGORIES"})
#: vCard items keyed by value and TYPE (other parameters are the item's version).
TYPE_KEYED = frozenset({"EMAIL", "TEL", "ADR", "URL"})
#: iCalendar items keyed by calendar address (parameters are the item's version).
ADDRESS_KEYED = frozenset({"ATTENDEE"})
#: Changes that matter for scheduling (RFC 5546 2.1.4): SEQUENCE goes up when a merge
#: makes a new combination of them.
SCHEDULING = frozenset(
    {"DTSTART", "DTEND", "DUE", "DURATION", "RRULE", "RDATE", "EXDATE", "EXRULE", "LOCATION"}
)
#: Timestamps the hash ignores: the newer of the two sides is kept.
NEWEST = frozenset({"DTSTAMP", "LAST-MODIFIED", "REV"})
#: Other properties the hash ignores: a's (b's when a has none).
FIRST = frozenset({"PRODID"})
#: Computed by the merge rather than merged (iCalendar only).
SEQUENCE = "SEQUENCE"


def is_set(name: str, vcard: bool) -> bool:
    """Whether a property (bare upper-case name) merges as a set whatever its count."""
    return name in (VCF_SETS if vcard else ICS_SETS)


def is_list(name: str, vcard: bool) -> bool:
    """Whether a property's values are separate items."""
    return name in (VCF_LISTS if vcard else ICS_LISTS)


def identity(name: str, group: str | None, vcard: bool) -> str:
    """What makes two lines the same property: the name, with its vCard group unless
    the property is multi-valued (``item1.EMAIL`` is one more EMAIL, while
    ``item1.X-ABLabel`` and ``item2.X-ABLabel`` are two properties)."""
    if group and not is_set(name, vcard):
        return group.upper() + "." + name
    return name
