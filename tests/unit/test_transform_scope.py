"""Scope: all objects, or the members of chosen groups with nested groups followed (transform/scope.py)."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_sync.mapping import parse_mapping
from domain_sync.records import SNAPSHOT_MEMBER_COLUMNS, STATE_ACTIVE, TENANT_STATE
from domain_sync.transform.directory import directory_records
from domain_sync.transform.scope import ScopeError, compute_scope, mark_scope, nested_groups

MAPPING = parse_mapping({"users": {"attributes": {}}, "groups": {"attributes": {}}})


def users(*ids):
    return pd.DataFrame([{"id": i, "displayName": i, "mailNickname": i, "userPrincipalName": f"{i}@x.test",
                          "accountEnabled": True, TENANT_STATE: STATE_ACTIVE} for i in ids])


def groups(*names):
    return pd.DataFrame([{"id": n, "displayName": n.upper()} for n in names])


def members(*edges):
    return pd.DataFrame([(g, m, "group" if m.startswith("g") else "user") for g, m in edges],
                        columns=SNAPSHOT_MEMBER_COLUMNS)


# g1 -> {u1, g2}; g2 -> {u2, g3}; g3 -> {u3, g1} (a cycle); g4 -> {u4}; u5 in no group
USERS = users("u1", "u2", "u3", "u4", "u5")
GROUPS = groups("g1", "g2", "g3", "g4")
MEMBERS = members(("g1", "u1"), ("g1", "g2"), ("g2", "u2"), ("g2", "g3"), ("g3", "u3"), ("g3", "g1"),
                  ("g4", "u4"))


def test_no_setting_means_every_object():
    scope = compute_scope(USERS, GROUPS, MEMBERS, "")
    assert scope.all_objects and scope.users == {"u1", "u2", "u3", "u4", "u5"} and len(scope.groups) == 4


def test_nested_groups_are_followed_transitively_through_a_cycle():
    scope = compute_scope(USERS, GROUPS, MEMBERS, "g2")
    assert scope.groups == {"g1", "g2", "g3"}
    assert scope.users == {"u1", "u2", "u3"}


def test_groups_are_named_by_id_or_display_name_without_case():
    assert compute_scope(USERS, GROUPS, MEMBERS, " g4 , g3 ").users == {"u1", "u2", "u3", "u4"}
    assert compute_scope(USERS, GROUPS, MEMBERS, "G4").groups == {"g4"}


def test_unknown_and_ambiguous_names_stop_with_a_message():
    with pytest.raises(ScopeError, match="'Nope' is neither the id nor the display name"):
        compute_scope(USERS, GROUPS, MEMBERS, "g1,Nope")
    twins = pd.concat([GROUPS, pd.DataFrame([{"id": "g9", "displayName": "G1"}])])
    with pytest.raises(ScopeError, match="names 2 groups"):
        compute_scope(USERS, twins, MEMBERS, "G1")


@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=25), st.integers(0, 7))
@settings(max_examples=100, deadline=None)
def test_nested_groups_are_exactly_the_groups_reachable_from_the_roots(edges, root):
    frame = members(*[(f"g{a}", f"g{b}") for a, b in edges])
    reachable, todo = {f"g{root}"}, [f"g{root}"]
    while todo:
        current = todo.pop()
        for a, b in edges:
            if f"g{a}" == current and f"g{b}" not in reachable:
                reachable.add(f"g{b}")
                todo.append(f"g{b}")
    assert nested_groups({f"g{root}"}, frame, {f"g{i}" for i in range(8)}) == reachable


def records_for(setting, previous_users=None, previous_groups=None):
    scope = compute_scope(USERS, GROUPS, MEMBERS, setting, previous_users, previous_groups)
    marked_users, marked_groups = mark_scope(USERS, GROUPS, scope)
    records = directory_records(marked_users, marked_groups, MEMBERS, MAPPING)
    return scope, marked_users, marked_groups, records


def test_users_never_in_scope_get_no_record_and_out_of_scope_groups_none():
    _, _, _, records = records_for("g4")
    assert list(records.users["anchor"]) == ["u4"] and list(records.groups["anchor"]) == ["g4"]
    assert set(zip(records.members["group_anchor"], records.members["member_anchor"], strict=True)) == {("g4", "u4")}


def test_users_leaving_scope_stay_disabled_and_the_change_is_previewed():
    _, before_users, before_groups, _ = records_for("g1")
    scope, _, _, records = records_for("g4", before_users, before_groups)
    enabled = dict(zip(records.users["anchor"], records.users["enabled"], strict=True))
    assert enabled == {"u1": False, "u2": False, "u3": False, "u4": True}
    assert set(records.groups["anchor"]) == {"g4"}
    assert {k: scope.preview[k] for k in ("users_entering", "users_leaving", "groups_entering", "groups_leaving",
                                          "users_out_of_scope_kept_disabled")} == {
        "users_entering": 1, "users_leaving": 3, "groups_entering": 1, "groups_leaving": 3,
        "users_out_of_scope_kept_disabled": 3}
    # The objects entering or leaving scope, named for the plan's drift count (not drift: the tenant moved them).
    assert scope.changed == {"u1", "u2", "u3", "u4", "g1", "g2", "g3", "g4"}
    assert compute_scope(USERS, GROUPS, MEMBERS, "g4", *records_for("g4")[1:3]).changed == set()


def test_synced_users_stay_records_over_later_runs_and_come_back_enabled():
    _, u1, g1, _ = records_for("g1")
    _, u2, g2, _ = records_for("g4", u1, g1)
    _, u3, g3, records = records_for("g4", u2, g2)
    assert set(records.users["anchor"]) == {"u1", "u2", "u3", "u4"}
    scope, _, _, records = records_for("g1", u3, g3)
    assert dict(zip(records.users["anchor"], records.users["enabled"], strict=True))["u1"] is True
    assert scope.preview["users_entering"] == 3


def test_a_snapshot_from_before_scoping_counts_as_everything_synced():
    scope, _, _, records = records_for("g4", USERS, GROUPS)
    assert set(records.users["anchor"]) == {"u1", "u2", "u3", "u4", "u5"}
    assert scope.preview["users_leaving"] == 4


def test_memberships_to_objects_outside_the_tenant_are_counted():
    scope = compute_scope(USERS, GROUPS, MEMBERS, "")
    marked_users, marked_groups = mark_scope(USERS, GROUPS, scope)
    extra = pd.concat([MEMBERS, members(("g1", "device-1"))], ignore_index=True)
    records = directory_records(marked_users, marked_groups, extra, MAPPING)
    assert records.dropped_memberships == {"unknown_object": 1, "out_of_scope": 0, "not_user_or_group": 0}


def test_devices_service_principals_and_contacts_are_counted_never_members():
    scope = compute_scope(USERS, GROUPS, MEMBERS, "")
    marked_users, marked_groups = mark_scope(USERS, GROUPS, scope)
    others = pd.DataFrame([("g1", "u1", t) for t in ("device", "servicePrincipal", "orgContact")],
                          columns=["group_id", "member_id", "member_type"])
    extra = pd.concat([MEMBERS, others], ignore_index=True)
    records = directory_records(marked_users, marked_groups, extra, MAPPING)
    base = directory_records(marked_users, marked_groups, MEMBERS, MAPPING)
    assert records.dropped_memberships["not_user_or_group"] == 3
    assert records.other_member_types == {"device": 1, "servicePrincipal": 1, "orgContact": 1}
    assert len(records.members) == len(base.members)
