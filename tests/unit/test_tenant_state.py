"""Folding delta rounds into the tenant snapshot (Graph delta rules, DESIGN.md section 4)."""

import pandas as pd

from domain_sync.records import FIELDS, MEMBER_COLUMNS, REMOVED, STATE_SOFT_DELETED, TENANT_STATE
from domain_sync.transform.tenant_state import merge_members, merge_objects


def changes(*rows):
    out = []
    for row in rows:
        row = dict(row)
        if REMOVED not in row:
            row[FIELDS] = ",".join(k for k in row if k != "id")
        out.append(row)
    return pd.DataFrame(out)


def snapshot_of(frame):
    return {r["id"]: r for r in frame.to_dict("records")}


def test_first_round_takes_every_object():
    snap, gone = merge_objects(None, changes({"id": "u1", "displayName": "A"}, {"id": "u2", "displayName": "B"}),
                               full=True, soft_delete_keeps=True)
    assert set(snap["id"]) == {"u1", "u2"} and gone == set()


def test_partial_object_updates_only_the_properties_it_carries():
    base, _ = merge_objects(None, changes({"id": "u1", "displayName": "A", "city": "Oslo"}), True, True)
    snap, _ = merge_objects(base, changes({"id": "u1", "city": "Bergen"}), False, True)
    row = snapshot_of(snap)["u1"]
    assert row["displayName"] == "A" and row["city"] == "Bergen"


def test_last_appearance_in_a_round_wins():
    snap, _ = merge_objects(None, changes({"id": "u1", "city": "Oslo"}, {"id": "u1", "city": "Rome"}), True, True)
    assert len(snap) == 1 and snapshot_of(snap)["u1"]["city"] == "Rome"


def test_soft_deleted_user_stays_marked_and_hard_deleted_leaves():
    base, _ = merge_objects(None, changes({"id": "u1", "city": "a"}, {"id": "u2", "city": "b"}), True, True)
    snap, gone = merge_objects(base, changes({"id": "u1", REMOVED: "changed"}, {"id": "u2", REMOVED: "deleted"}),
                               False, True)
    assert snapshot_of(snap)["u1"][TENANT_STATE] == STATE_SOFT_DELETED
    assert "u2" not in snapshot_of(snap) and gone == {"u2"}


def test_restored_user_is_active_again():
    base, _ = merge_objects(None, changes({"id": "u1", "city": "a"}), True, True)
    soft, _ = merge_objects(base, changes({"id": "u1", REMOVED: "changed"}), False, True)
    back, _ = merge_objects(soft, changes({"id": "u1", "city": "a"}), False, True)
    assert snapshot_of(back)["u1"][TENANT_STATE] == "active"


def test_full_read_drops_objects_it_does_not_contain():
    base, _ = merge_objects(None, changes({"id": "u1"}, {"id": "u2"}), True, True)
    snap, gone = merge_objects(base, changes({"id": "u1"}), True, True)
    assert set(snap["id"]) == {"u1"} and gone == {"u2"}


def test_membership_changes_apply_as_a_set():
    first = pd.DataFrame([("g1", "u1", "user", False), ("g1", "u2", "user", False)], columns=MEMBER_COLUMNS)
    snap = merge_members(None, first, True, set(), set())
    delta = pd.DataFrame([("g1", "u1", "user", True), ("g1", "u3", "user", False), ("g1", "u3", "user", False)],
                         columns=MEMBER_COLUMNS)
    after = merge_members(snap, delta, False, set(), set())
    assert sorted(after["member_id"]) == ["u2", "u3"]


def test_memberships_of_removed_objects_go_with_them():
    first = pd.DataFrame([("g1", "u1", "user", False), ("g2", "u2", "user", False)], columns=MEMBER_COLUMNS)
    snap = merge_members(None, first, True, set(), set())
    after = merge_members(snap, pd.DataFrame(columns=MEMBER_COLUMNS), False, {"g2"}, {"u1"})
    assert after.empty


def test_a_full_read_keeps_soft_deleted_users_soft_deleted_until_restored():
    base, _ = merge_objects(None, changes({"id": "u1", "city": "a"}, {"id": "u2"}), True, True)
    soft, _ = merge_objects(base, changes({"id": "u1", REMOVED: "changed"}), False, True)
    full, gone = merge_objects(soft, changes({"id": "u2"}), True, True)  # a full read lists u2 only
    assert snapshot_of(full)["u1"][TENANT_STATE] == "soft_deleted" and "u1" not in gone
    restored, _ = merge_objects(full, changes({"id": "u1", "city": "b"}), True, True)
    assert snapshot_of(restored)["u1"][TENANT_STATE] == "active"
    groups, gone = merge_objects(soft, changes({"id": "u2"}), True, False)  # groups: soft delete is gone
    assert "u1" in gone
