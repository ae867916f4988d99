"""A server's change applied as the properties that changed, not as the server's
re-serialisation of the whole record.

Servers rewrite what they store: Cyrus keeps a vCard 4.0 as 3.0 (``KIND`` becomes
``X-ADDRESSBOOKSERVER-KIND``), reorders RRULE parts and splits EXDATE lists; DAViCal
rewrites REV and parameter quoting. The executor reads back what a server stored after
each write and the state keeps that form where it differs from what was written (the
base). When the server's record then changes (a phone's edit) and the local one did
not, copying the server's version over the local one would replace the user's file with
the server's serialisation. Instead the change is found against the stored form and
applied to the local version (``pimsync.merge.apply_changes``): a vCard 4.0 stays 4.0
when a phone changes its TEL, an event keeps its RRULE text when the phone edits its
SUMMARY. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pimsync.plan import Copy, Plan
from pimsync.plan_types import Item, other

#: ident -> (base, what side a stored, what side b stored); None where unknown or equal
Forms = Mapping[str, tuple[bytes | None, bytes | None, bytes | None]]


def wanted(the_plan: Plan) -> list[str]:
    """The idents whose stored forms ``apply_as_changes`` may use: updates copied to a
    side from the other one."""
    return [
        a.ident
        for a in the_plan.actions
        if isinstance(a, Copy) and a.target is not None and a.source.record is not None
    ]


def apply_as_changes(the_plan: Plan, forms: Forms) -> Plan:
    """The plan with each update copied from a side whose stored form is known turned
    into that side's change applied to the other side's version (where that side has not
    changed since the last sync and the change can be applied)."""
    from pimsync.errors import MalformedRecord
    from pimsync.merge import apply_changes
    from pimsync.model import parse_record

    actions = []
    for act in the_plan.actions:
        if (
            isinstance(act, Copy)
            and act.target is not None
            and (record := act.source.record) is not None
            and act.ident in forms
        ):
            base, stored_a, stored_b = forms[act.ident]
            stored = stored_a if other(act.to) == "a" else stored_b
            if base is not None and stored is not None:
                try:
                    local = parse_record(base, record.kind, "base")
                    before = parse_record(stored, record.kind, "stored")
                except MalformedRecord:
                    local = before = None
                if local is not None and before is not None and local.hash == act.target.hash:
                    applied = apply_changes(before, local, record)
                    if applied is not None and applied.text != record.text:
                        src = act.source
                        reason = "; ".join(
                            r for r in (act.reason, "the server's change applied") if r
                        )
                        act = replace(
                            act,
                            source=Item(src.href, src.etag, src.hash, applied),
                            source_form=record.to_bytes(),
                            reason=reason,
                        )
        actions.append(act)
    return Plan(actions=actions, stop=the_plan.stop)


__all__ = ["Forms", "apply_as_changes", "wanted"]
