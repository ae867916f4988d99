"""The planner's decision table, one case per row (see docs/sync-algorithm.md)."""

from __future__ import annotations

import pytest

from pimsync.model.record import Record
from pimsync.plan import Copy, Delete, Duplicate, Forget, Options, SaveState, SideView, Skip, plan
from pimsync.plan_types import Entry, Item, Known, Pending


def rec(ident: str, h: str) -> Record:
    return Record(ident, "vcf", f"BEGIN:VCARD\r\nUID:{ident}\r\nEND:VCARD\r\n", h, ident)


def item(ident: str, h: str, href: str | None = None, etag: str = "e") -> Item:
    return Item(href or f"{ident}.vcf", etag + h, h, rec(ident, h))


def known(ident: str, h: str, href: str | None = None, etag: str = "e") -> Known:
    return Known(href or f"{ident}.vcf", etag + h, h)


def view(*items: tuple[str, Item], **kw) -> SideView:
    return SideView(dict(items), **kw)


def entry(ident: str, ha: str | None, hb: str | None) -> Entry:
    return Entry(ident, known(ident, ha) if ha else None, known(ident, hb) if hb else None)


def only(p):
    assert p.stop is None
    actions = [a for a in p.actions if not (isinstance(a, SaveState) and a.first)]
    assert len(actions) == 1, p.actions
    return actions[0]


# -- no state ---------------------------------------------------------------------------
def test_new_on_a_is_created_on_b():
    act = only(plan(view(("x", item("x", "1"))), view(), {}))
    assert isinstance(act, Copy) and act.to == "b" and act.target is None


def test_new_on_b_is_created_on_a():
    act = only(plan(view(), view(("x", item("x", "1"))), {}))
    assert isinstance(act, Copy) and act.to == "a"


def test_first_sync_same_content_only_records_state():
    act = only(plan(view(("x", item("x", "1"))), view(("x", item("x", "1", etag="f"))), {}))
    assert isinstance(act, SaveState)
    assert act.a.hash == act.b.hash == "1"


def test_first_sync_different_content_is_a_conflict():
    act = only(
        plan(
            view(("x", item("x", "1"))), view(("x", item("x", "2"))), {}, options=Options("b wins")
        )
    )
    assert isinstance(act, Copy) and act.to == "a" and act.reason.startswith("conflict")


# -- with state ------------------------------------------------------------------------
def test_nothing_changed_nothing_done():
    p = plan(view(("x", item("x", "1"))), view(("x", item("x", "1"))), {"x": entry("x", "1", "1")})
    assert p.actions == []


def test_etag_moved_same_hash_only_saves_state():
    a = view(("x", item("x", "1", etag="moved")))
    act = only(plan(a, view(("x", item("x", "1"))), {"x": entry("x", "1", "1")}))
    assert isinstance(act, SaveState) and act.a.etag == "moved1"


def test_changed_on_a_updates_b():
    act = only(
        plan(view(("x", item("x", "2"))), view(("x", item("x", "1"))), {"x": entry("x", "1", "1")})
    )
    assert isinstance(act, Copy) and act.to == "b" and act.target.hash == "1"


def test_changed_on_b_updates_a():
    act = only(
        plan(view(("x", item("x", "1"))), view(("x", item("x", "2"))), {"x": entry("x", "1", "1")})
    )
    assert isinstance(act, Copy) and act.to == "a"


def test_deleted_on_a_deletes_on_b():
    act = only(
        plan(
            view(),
            view(("x", item("x", "1"))),
            {"x": entry("x", "1", "1")},
            options=Options(force_delete=True),
        )
    )
    assert isinstance(act, Delete) and act.on == "b"


def test_deleted_on_b_deletes_on_a():
    a = view(("x", item("x", "1")), ("y", item("y", "1")))
    b = view(("y", item("y", "1")))
    state = {"x": entry("x", "1", "1"), "y": entry("y", "1", "1")}
    act = only(plan(a, b, state))
    assert isinstance(act, Delete) and act.on == "a" and act.ident == "x"


def test_edit_beats_delete():
    a = view(("x", item("x", "2")), ("y", item("y", "1")))
    b = view(("y", item("y", "1")))
    state = {"x": entry("x", "1", "1"), "y": entry("y", "1", "1")}
    act = only(plan(a, b, state))
    assert isinstance(act, Copy) and act.to == "b" and act.target is None
    assert act.reason == "edit wins over delete"


def test_deleted_on_both_is_forgotten():
    a = view(("y", item("y", "1")))
    b = view(("y", item("y", "1")))
    act = only(plan(a, b, {"x": entry("x", "1", "1"), "y": entry("y", "1", "1")}))
    assert isinstance(act, Forget) and act.ident == "x"


def test_same_change_on_both_sides_saves_state():
    act = only(
        plan(view(("x", item("x", "2"))), view(("x", item("x", "2"))), {"x": entry("x", "1", "1")})
    )
    assert isinstance(act, SaveState) and act.record is not None


@pytest.mark.parametrize(("policy", "to"), [("a wins", "b"), ("b wins", "a"), ("keep both", "b")])
def test_conflict_policies(policy, to):
    a, b = view(("x", item("x", "2"))), view(("x", item("x", "3")))
    p = plan(a, b, {"x": entry("x", "1", "1")}, options=Options(policy))
    [copy] = [act for act in p.actions if isinstance(act, Copy)]
    assert isinstance(copy, Copy) and copy.to == to and copy.reason.startswith("conflict")


def test_empty_side_stops_the_collection():
    p = plan(view(), view(("x", item("x", "1"))), {"x": entry("x", "1", "1")})
    assert p.actions == [] and "--force-delete" in p.stop


def test_malformed_record_is_skipped_and_counterpart_kept():
    a = view(("y", item("y", "1")), skip=frozenset({"x"}))
    b = view(("x", item("x", "1")), ("y", item("y", "1")))
    p = plan(a, b, {"x": entry("x", "1", "1"), "y": entry("y", "1", "1")})
    assert p.actions == []


def test_uncertain_side_propagates_no_deletion():
    a = view(("y", item("y", "1")), uncertain=True)
    b = view(("x", item("x", "1")), ("y", item("y", "1")))
    p = plan(a, b, {"x": entry("x", "1", "1"), "y": entry("y", "1", "1")})
    assert p.actions == []


def test_read_only_side_is_never_written():
    a = view(("x", item("x", "2")), ("n", item("n", "1")))
    b = view(("x", item("x", "1")), ("d", item("d", "1")), read_only=True)
    state = {"x": entry("x", "1", "1"), "d": entry("d", "1", "1")}
    p = plan(a, b, state)
    # nothing is written and nothing noted: the difference stays visible on every run
    assert {(act.ident, act.what) for act in p.actions if isinstance(act, Skip)} == {
        ("x", "update"),
        ("n", "create"),
        ("d", "delete"),
    }
    assert len(p.actions) == 3


def test_conflict_with_a_read_only_loser_writes_nothing():
    a = view(("x", item("x", "2")))
    b = view(("x", item("x", "3")), read_only=True)
    act = only(plan(a, b, {"x": entry("x", "1", "1")}, options=Options("a wins")))
    assert isinstance(act, Skip) and act.reason.startswith("conflict")


def test_conflict_with_a_read_only_winner_updates_the_other_side():
    a = view(("x", item("x", "2")))
    b = view(("x", item("x", "3")), read_only=True)
    act = only(plan(a, b, {"x": entry("x", "1", "1")}, options=Options("b wins")))
    assert isinstance(act, Copy) and act.to == "a"


def test_deletion_on_a_read_only_side_flows_out():
    a = view(("x", item("x", "1")), ("y", item("y", "1")))
    b = view(("y", item("y", "1")), read_only=True)
    act = only(plan(a, b, {"x": entry("x", "1", "1"), "y": entry("y", "1", "1")}))
    assert isinstance(act, Delete) and act.on == "a"


def test_read_only_side_changes_still_flow_out():
    a = view(("x", item("x", "1")))
    b = view(("x", item("x", "2")), read_only=True)
    act = only(plan(a, b, {"x": entry("x", "1", "1")}))
    assert isinstance(act, Copy) and act.to == "a"


def test_pending_write_that_landed_becomes_the_base():
    # A crashed run wrote version 2 to b; then a was edited to 3. Without the pending note
    # this would be a conflict; with it, only a changed.
    a = view(("x", item("x", "3")))
    b = view(("x", item("x", "2")))
    pending = [Pending("x", "b", "2", "2")]
    act = only(plan(a, b, {"x": entry("x", "1", "1")}, pending))
    assert isinstance(act, Copy) and act.to == "b" and not act.reason


def test_pending_create_without_state():
    a = view(("x", item("x", "3")))
    b = view(("x", item("x", "2")))
    act = only(plan(a, b, {}, [Pending("x", "b", "2", "2")]))
    assert isinstance(act, Copy) and act.to == "b"


def test_pending_write_that_did_not_land_is_ignored():
    a = view(("x", item("x", "2")))
    b = view(("x", item("x", "1")))
    act = only(plan(a, b, {"x": entry("x", "1", "1")}, [Pending("x", "b", "2", "2")]))
    # b still holds 1: the landed check fails for b... but a holds 2 = the written hash's
    # source; the plan is still "copy a to b"
    assert isinstance(act, Copy) and act.to == "b"


def test_keep_both_duplicates_the_loser():
    a, b = view(("x", item("x", "2"))), view(("x", item("x", "3")))
    p = plan(a, b, {"x": entry("x", "1", "1")}, options=Options("keep both"))
    dup = [act for act in p.actions if isinstance(act, Duplicate)]
    assert len(dup) == 1 and dup[0].sides == ("a", "b") and dup[0].origin == "x"
    # the losing version is kept before the winner replaces it
    assert p.actions.index(dup[0]) < next(i for i, a in enumerate(p.actions) if isinstance(a, Copy))


# -- collection metadata ----------------------------------------------------------------
def test_meta_changed_on_one_side_is_copied():
    from pimsync.plan import plan_meta

    base = {"displayname": "Home", "color": "#ff0000"}
    p = plan_meta(
        {"displayname": "Family", "color": "#ff0000"}, base, base, ["displayname", "color"]
    )
    assert p.set_b == {"displayname": "Family"} and p.set_a == {}
    assert p.base == {"displayname": "Family", "color": "#ff0000"}
    p = plan_meta(base, {"displayname": "Home", "color": None}, base, ["displayname", "color"])
    assert p.set_a == {"color": None}  # removed on b: removed on a


def test_meta_first_sync_fills_the_side_that_has_none():
    from pimsync.plan import plan_meta

    p = plan_meta({"displayname": None}, {"displayname": "Work"}, None, ["displayname"])
    assert p.set_a == {"displayname": "Work"}  # never synced: a value beats none
    p = plan_meta({"displayname": "Mine"}, {"displayname": "Work"}, None, ["displayname"], "b wins")
    assert p.set_a == {"displayname": "Work"}


def test_meta_conflict_and_read_only():
    from pimsync.plan import plan_meta

    base = {"color": "#000000"}
    p = plan_meta({"color": "#111111"}, {"color": "#222222"}, base, ["color"])
    assert p.set_b == {"color": "#111111"}
    p = plan_meta(
        {"color": "#111111"}, {"color": "#000000"}, base, ["color"], read_only=(False, True)
    )
    assert p.set_b == {} and p.base == base  # read-only b: not written, base kept


# -- never lose a record ----------------------------------------------------------------
def test_dropped_write_is_written_again_not_deleted():
    # pimsync wrote x to b (a server) and b has not listed it since: not a deletion
    e = Entry("x", known("x", "1"), Known("x.vcf", "e1", "1", unseen=True))
    y = ("y", item("y", "9"))  # b lists something: not the empty-side guard
    state = {"x": e, "y": entry("y", "9", "9")}
    act = only(plan(view(("x", item("x", "1")), y), view(y), state))
    assert isinstance(act, Copy) and act.to == "b" and act.target is None and act.again
    # an edit on a meanwhile goes there too
    act = only(plan(view(("x", item("x", "2")), y), view(y), state))
    assert isinstance(act, Copy) and act.source.hash == "2" and act.again


def test_dropped_write_deleted_on_the_other_side_is_forgotten():
    e = Entry("x", known("x", "1"), Known("x.vcf", "e1", "1", unseen=True))
    y = ("y", item("y", "9"))
    act = only(plan(view(y), view(y), {"x": e, "y": entry("y", "9", "9")}))
    assert isinstance(act, Forget)


def test_a_listed_write_is_seen():
    e = Entry("x", known("x", "1"), Known("x.vcf", "e1", "1", unseen=True))
    act = only(plan(view(("x", item("x", "1"))), view(("x", item("x", "1", etag="e"))), {"x": e}))
    assert isinstance(act, SaveState) and act.b is not None and not act.b.unseen


def _many(n: int, skip: int = 0) -> SideView:
    return view(*((f"r{i}", item(f"r{i}", "1")) for i in range(skip, n)))


def test_mass_deletion_stops_the_collection():
    state = {f"r{i}": entry(f"r{i}", "1", "1") for i in range(20)}
    p = plan(_many(20), _many(20, skip=11), state)  # 11 of 20 deleted on b
    assert p.stop and "would delete 11 of the 20 records on side a" in p.stop
    assert "--force-delete" in p.stop and not p.actions
    p = plan(_many(20), _many(20, skip=11), state, options=Options(force_delete=True))
    assert p.stop is None and sum(isinstance(a, Delete) for a in p.actions) == 11
    assert plan(_many(20), _many(20, skip=10), state).stop is None  # half: not more
    small = {f"r{i}": entry(f"r{i}", "1", "1") for i in range(8)}
    assert plan(_many(8), _many(8, skip=5), small).stop is None  # not more than a few
    assert plan(_many(20), _many(20, skip=11), state, options=Options(max_delete=1.0)).stop is None


def test_max_delete_count():
    state = {f"r{i}": entry(f"r{i}", "1", "1") for i in range(20)}
    assert plan(_many(20), _many(20, skip=3), state, options=Options(max_delete=2)).stop
    assert plan(_many(20), _many(20, skip=2), state, options=Options(max_delete=2)).stop is None
    assert plan(_many(20), _many(20, skip=1), state, options=Options(max_delete=0)).stop


def test_landed_pending_write_carries_its_base():
    # a crashed run wrote 2 to b (the note holds the content); b now holds it, a too
    a = view(("x", item("x", "2")))
    b = view(("x", item("x", "2")))
    pending = [Pending("x", "b", "2", "2", b"BEGIN:VCARD...")]
    act = only(plan(a, b, {"x": entry("x", "1", "1")}, pending))
    assert isinstance(act, SaveState) and act.base == b"BEGIN:VCARD..."


def test_a_row_without_base_is_healed_when_a_record_is_at_hand():
    a = view(("x", item("x", "1")))
    b = view(("x", Item("x.vcf", "e1", "1")))  # listed, not read
    state = {"x": entry("x", "1", "1")}
    assert plan(a, b, state).actions == []  # nothing to do
    act = only(plan(a, b, state, without_base={"x"}))
    assert isinstance(act, SaveState) and act.record is not None
