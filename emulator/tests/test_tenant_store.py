"""Delta semantics of the in-memory tenant, without HTTP."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.tenant import GROUPS, USERS, GraphError, Settings, Tenant

USER_T = "#microsoft.graph.user"
GROUP_T = "#microsoft.graph.group"


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_tenant(n_users: int = 12, groups: list[dict] | None = None, **settings) -> Tenant:
    tenant = Tenant(settings=Settings(**settings), clock=Clock())
    users = [{"id": f"u{i:02d}", "displayName": f"User {i}", "mail": f"u{i}@x.test", "manager": {"id": "u00"}}
             for i in range(n_users)]
    tenant.load({"users": users, "groups": groups or []})
    return tenant


def full_round(tenant: Tenant, kind: str, token: str | None = None, select=None, page_size=None):
    """All pages of one round: (pages, delta token)."""
    pages = []
    page = tenant.delta(kind, token=token, select=select, page_size=page_size)
    pages.append(page.items)
    while page.next_token:
        page = tenant.delta(kind, token=page.next_token, page_size=page_size)
        pages.append(page.items)
    assert page.delta_token
    return pages, page.delta_token


def flat(pages):
    return [item for page in pages for item in page]


def merged_members(items) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in items:
        out.setdefault(item["id"], []).extend(item.get("members@delta", []))
    return out


def group(gid: str, members: list[str], name: str | None = None) -> dict:
    return {
        "id": gid,
        "displayName": name or gid,
        "members": [{"@odata.type": USER_T if m.startswith("u") else GROUP_T, "id": m} for m in members],
    }


# --------------------------------------------------------------------------- initial round


def test_initial_round_returns_every_user_once_across_pages():
    tenant = make_tenant(25, page_size=10)
    pages, _ = full_round(tenant, USERS)
    assert [len(p) for p in pages] == [10, 10, 5]
    ids = [item["id"] for item in flat(pages)]
    assert sorted(ids) == [f"u{i:02d}" for i in range(25)]
    assert len(set(ids)) == 25


def test_initial_round_leaves_out_removed_objects():
    tenant = make_tenant(5)
    tenant.delete(USERS, "u01")
    tenant.delete(USERS, "u02", permanent=True)
    items = flat(full_round(tenant, USERS)[0])
    assert sorted(i["id"] for i in items) == ["u00", "u03", "u04"]
    assert not any("@removed" in i for i in items)


def test_initial_round_groups_carry_every_current_member():
    tenant = make_tenant(6, groups=[group("g1", ["u01", "u02", "g2"]), group("g2", ["u03"]), group("g3", [])])
    items = {i["id"]: i for i in flat(full_round(tenant, GROUPS, select="id,displayName,members")[0])}
    assert items["g1"]["members@delta"] == [
        {"@odata.type": USER_T, "id": "u01"},
        {"@odata.type": USER_T, "id": "u02"},
        {"@odata.type": GROUP_T, "id": "g2"},
    ]
    assert items["g2"]["members@delta"] == [{"@odata.type": USER_T, "id": "u03"}]
    assert "members@delta" not in items["g3"]


# --------------------------------------------------------------------------- $select


def test_select_restricts_properties_keeps_id_and_carries_the_manager_as_manager_delta():
    tenant = make_tenant(3)
    items = flat(full_round(tenant, USERS, select="displayName,manager")[0])
    assert items[1] == {"id": "u01", "displayName": "User 1", "manager@delta": [{"@odata.type": USER_T, "id": "u00"}]}


def test_select_of_missing_property_answers_null():
    tenant = make_tenant(1)
    items = flat(full_round(tenant, USERS, select="id,jobTitle")[0])
    assert items == [{"id": "u00", "jobTitle": None}]


def test_members_in_select_turns_members_delta_on_and_off():
    tenant = make_tenant(3, groups=[group("g1", ["u01"])])
    with_members = flat(full_round(tenant, GROUPS, select="id,displayName,members")[0])
    without = flat(full_round(tenant, GROUPS, select="id,displayName")[0])
    assert with_members[0]["members@delta"] == [{"@odata.type": USER_T, "id": "u01"}]
    assert without == [{"id": "g1", "displayName": "g1"}]


def test_select_survives_into_next_and_delta_tokens():
    tenant = make_tenant(4, page_size=2)
    pages, delta = full_round(tenant, USERS, select="id,mail")
    assert all(set(i) == {"id", "mail"} for i in flat(pages))
    tenant.update(USERS, "u03", {"displayName": "Renamed"})
    changed = flat(full_round(tenant, USERS, token=delta)[0])
    assert changed == [{"id": "u03", "mail": "u3@x.test"}]


# --------------------------------------------------------------------------- incremental rounds


def test_round_after_update_returns_only_the_changed_object_in_its_current_state():
    tenant = make_tenant(10)
    _, delta = full_round(tenant, USERS)
    tenant.update(USERS, "u04", {"displayName": "Renamed Four", "jobTitle": "CTO"})
    tenant.update(USERS, "u04", {"jobTitle": "CEO"})
    items = flat(full_round(tenant, USERS, token=delta)[0])
    assert len(items) == 1
    assert items[0]["id"] == "u04"
    assert items[0]["displayName"] == "Renamed Four"
    assert items[0]["jobTitle"] == "CEO"


def test_soft_delete_reports_reason_changed():
    tenant = make_tenant(5)
    _, delta = full_round(tenant, USERS)
    tenant.delete(USERS, "u02")
    assert flat(full_round(tenant, USERS, token=delta)[0]) == [{"id": "u02", "@removed": {"reason": "changed"}}]


def test_hard_delete_reports_reason_deleted():
    tenant = make_tenant(5)
    _, delta = full_round(tenant, USERS)
    tenant.delete(USERS, "u02", permanent=True)
    assert flat(full_round(tenant, USERS, token=delta)[0]) == [{"id": "u02", "@removed": {"reason": "deleted"}}]


def test_hard_delete_of_a_soft_deleted_object_reports_deleted():
    tenant = make_tenant(5)
    tenant.delete(USERS, "u02")
    _, delta = full_round(tenant, USERS)
    tenant.delete(USERS, "u02", permanent=True)
    assert flat(full_round(tenant, USERS, token=delta)[0]) == [{"id": "u02", "@removed": {"reason": "deleted"}}]
    with pytest.raises(GraphError) as err:
        tenant.restore(USERS, "u02")
    assert err.value.status == 404


def test_restored_object_reappears_as_a_normal_object():
    tenant = make_tenant(5)
    tenant.delete(USERS, "u03")
    _, delta = full_round(tenant, USERS)
    tenant.restore(USERS, "u03")
    items = flat(full_round(tenant, USERS, token=delta)[0])
    assert items == [{"id": "u03", "displayName": "User 3", "mail": "u3@x.test",
                      "manager@delta": [{"@odata.type": USER_T, "id": "u00"}]}]


def test_soft_delete_then_restore_within_one_round_shows_the_object_only():
    tenant = make_tenant(5)
    _, delta = full_round(tenant, USERS)
    tenant.delete(USERS, "u03")
    tenant.restore(USERS, "u03")
    items = flat(full_round(tenant, USERS, token=delta)[0])
    assert [i["id"] for i in items] == ["u03"]
    assert "@removed" not in items[0]


def test_soft_deleted_user_leaves_its_groups_and_returns_on_restore():
    tenant = make_tenant(4, groups=[group("g1", ["u01", "u02"])])
    _, delta = full_round(tenant, GROUPS)
    tenant.delete(USERS, "u01")
    items, delta = full_round(tenant, GROUPS, token=delta)
    assert flat(items)[0]["members@delta"] == [{"@odata.type": USER_T, "id": "u01", "@removed": {"reason": "deleted"}}]
    tenant.restore(USERS, "u01")
    items, _ = full_round(tenant, GROUPS, token=delta)
    assert flat(items)[0]["members@delta"] == [{"@odata.type": USER_T, "id": "u01"}]


def test_membership_changes_carry_only_the_changes_since_the_token():
    tenant = make_tenant(8, groups=[group("g1", ["u01", "u02", "u03"]), group("g2", ["u04"])])
    _, delta = full_round(tenant, GROUPS)
    tenant.add_member("g1", "u05")
    tenant.remove_member("g1", "u02")
    tenant.add_member("g1", "g2")
    items = flat(full_round(tenant, GROUPS, token=delta)[0])
    assert [i["id"] for i in items] == ["g1"]
    assert items[0]["members@delta"] == [
        {"@odata.type": USER_T, "id": "u05"},
        {"@odata.type": USER_T, "id": "u02", "@removed": {"reason": "deleted"}},
        {"@odata.type": GROUP_T, "id": "g2"},
    ]


def test_membership_change_bumps_the_group_sequence():
    tenant = make_tenant(3, groups=[group("g1", [])])
    before = tenant.object_sequence(GROUPS, "g1")
    tenant.add_member("g1", "u01")
    assert tenant.object_sequence(GROUPS, "g1") > before
    assert tenant.object_sequence(GROUPS, "g1") == tenant.sequence


def test_large_group_spans_pages_and_merges_to_all_members():
    members = [f"u{i:02d}" for i in range(1, 11)]
    tenant = make_tenant(12, groups=[group("g0", ["u00"]), group("g1", members), group("g2", ["u11"])],
                         members_page_size=3)
    pages, _ = full_round(tenant, GROUPS)
    g1_pages = [p for p in pages if any(i["id"] == "g1" for i in p)]
    assert len(g1_pages) == 4
    merged = merged_members(flat(pages))
    assert [m["id"] for m in merged["g1"]] == members
    assert [m["id"] for m in merged["g0"]] == ["u00"]
    assert [m["id"] for m in merged["g2"]] == ["u11"]


def test_membership_delta_of_a_large_change_spans_pages():
    tenant = make_tenant(12, groups=[group("g1", [])], members_page_size=4)
    _, delta = full_round(tenant, GROUPS)
    for i in range(10):
        tenant.add_member("g1", f"u{i:02d}")
    tenant.remove_member("g1", "u00")
    pages, _ = full_round(tenant, GROUPS, token=delta)
    assert len(pages) == 3
    merged = merged_members(flat(pages))["g1"]
    assert [m["id"] for m in merged if "@removed" not in m] == [f"u{i:02d}" for i in range(1, 10)]
    assert [m["id"] for m in merged if "@removed" in m] == ["u00"]


def test_hard_deleted_group_is_removed_and_leaves_its_parent():
    tenant = make_tenant(3, groups=[group("g1", ["g2"]), group("g2", ["u01"])])
    _, delta = full_round(tenant, GROUPS)
    tenant.delete(GROUPS, "g2", permanent=True)
    items = {i["id"]: i for i in flat(full_round(tenant, GROUPS, token=delta)[0])}
    assert items["g2"] == {"id": "g2", "@removed": {"reason": "deleted"}}
    assert items["g1"]["members@delta"] == [{"@odata.type": GROUP_T, "id": "g2", "@removed": {"reason": "deleted"}}]


def test_restored_group_carries_its_full_member_list():
    tenant = make_tenant(4, groups=[group("g1", ["u01", "u02"])])
    tenant.delete(GROUPS, "g1")
    _, delta = full_round(tenant, GROUPS)
    tenant.restore(GROUPS, "g1")
    items = flat(full_round(tenant, GROUPS, token=delta)[0])
    assert [m["id"] for m in items[0]["members@delta"]] == ["u01", "u02"]


def test_unchanged_round_is_empty_with_a_new_delta_token():
    tenant = make_tenant(5)
    _, delta = full_round(tenant, USERS)
    pages, delta2 = full_round(tenant, USERS, token=delta)
    assert pages == [[]]
    assert delta2
    pages, _ = full_round(tenant, USERS, token=delta2)
    assert pages == [[]]


def test_latest_gives_an_empty_page_and_a_token_at_the_current_sequence():
    tenant = make_tenant(5)
    page = tenant.delta(USERS, token="latest")
    assert page.items == [] and page.next_token is None and page.delta_token
    tenant.update(USERS, "u01", {"jobTitle": "Boss"})
    items = flat(full_round(tenant, USERS, token=page.delta_token)[0])
    assert [i["id"] for i in items] == ["u01"]


def test_tokens_of_one_kind_are_refused_by_the_other():
    tenant = make_tenant(2)
    _, delta = full_round(tenant, USERS)
    with pytest.raises(GraphError) as err:
        tenant.delta(GROUPS, token=delta)
    assert err.value.status == 400


def test_tokens_of_another_tenant_instance_are_unknown_sync_states():
    """A restarted emulator reloads its tenant file: delta links from before mean a full resync."""
    before = make_tenant(3)
    _, delta = full_round(before, USERS)
    after = make_tenant(3)
    with pytest.raises(GraphError) as err:
        after.delta(USERS, token=delta)
    assert (err.value.status, err.value.code) == (400, "syncStateNotFound")


def test_malformed_token_is_a_bad_request():
    tenant = make_tenant(2)
    with pytest.raises(GraphError) as err:
        tenant.delta(USERS, token="not-a-token")
    assert (err.value.status, err.value.code) == (400, "Request_BadRequest")


# --------------------------------------------------------------------------- expiry


def test_delta_token_expires_after_the_configured_age():
    tenant = make_tenant(3)
    _, delta = full_round(tenant, USERS)
    tenant.clock.now += 7 * 24 * 3600 - 1
    full_round(tenant, USERS, token=delta)
    tenant.clock.now += 2
    with pytest.raises(GraphError) as err:
        tenant.delta(USERS, token=delta)
    assert (err.value.status, err.value.code) == (400, "syncStateNotFound")


def test_expiry_age_is_configurable():
    tenant = make_tenant(3, delta_link_max_age_seconds=60)
    _, delta = full_round(tenant, USERS)
    tenant.clock.now += 61
    with pytest.raises(GraphError) as err:
        tenant.delta(USERS, token=delta)
    assert err.value.code == "syncStateNotFound"


# --------------------------------------------------------------------------- consistent snapshot


def test_changes_while_paging_do_not_leak_into_the_round():
    tenant = make_tenant(20, page_size=5)
    first = tenant.delta(USERS, select="id,displayName")
    seen = list(first.items)
    # Change objects behind and ahead of the cursor, add one, delete one ahead.
    tenant.update(USERS, "u01", {"displayName": "Changed behind"})
    tenant.update(USERS, "u15", {"displayName": "Changed ahead"})
    tenant.create(USERS, {"id": "u99", "displayName": "New"})
    tenant.delete(USERS, "u17", permanent=True)
    page = first
    while page.next_token:
        page = tenant.delta(USERS, token=page.next_token)
        seen.extend(page.items)
        tenant.update(USERS, "u18", {"displayName": f"Churn {len(seen)}"})
    ids = [i["id"] for i in seen]
    assert sorted(ids) == [f"u{i:02d}" for i in range(20)]
    by_id = {i["id"]: i for i in seen}
    assert by_id["u15"]["displayName"] == "User 15"
    assert by_id["u17"]["displayName"] == "User 17"
    assert by_id["u18"]["displayName"] == "User 18"
    nxt = flat(full_round(tenant, USERS, token=page.delta_token)[0])
    assert sorted(i["id"] for i in nxt) == ["u01", "u15", "u17", "u18", "u99"]
    assert {i["id"]: i.get("displayName") for i in nxt}["u15"] == "Changed ahead"


def test_membership_changes_while_paging_a_large_group_wait_for_the_next_round():
    members = [f"u{i:02d}" for i in range(10)]
    tenant = make_tenant(14, groups=[group("g1", members)], members_page_size=3)
    page = tenant.delta(GROUPS)
    collected = list(page.items)
    tenant.remove_member("g1", "u08")
    tenant.add_member("g1", "u12")
    tenant.remove_member("g1", "u01")
    tenant.add_member("g1", "u01")
    while page.next_token:
        page = tenant.delta(GROUPS, token=page.next_token)
        collected.extend(page.items)
    assert [m["id"] for m in merged_members(collected)["g1"]] == members
    nxt = merged_members(flat(full_round(tenant, GROUPS, token=page.delta_token)[0]))["g1"]
    assert {(m["id"], "@removed" in m) for m in nxt} == {("u08", True), ("u12", False), ("u01", False)}


def test_plain_listing_is_a_consistent_snapshot():
    tenant = make_tenant(9)
    page = tenant.list_page(USERS, top=4)
    seen = list(page.items)
    tenant.delete(USERS, "u07")
    tenant.create(USERS, {"id": "u50"})
    while page.next_token:
        page = tenant.list_page(USERS, token=page.next_token)
        seen.extend(page.items)
    assert [i["id"] for i in seen] == [f"u{i:02d}" for i in range(9)]


# --------------------------------------------------------------------------- writes


def test_create_generates_an_id_and_refuses_duplicates():
    tenant = make_tenant(1)
    created = tenant.create(USERS, {"displayName": "No id", "userPrincipalName": "a@x.test"})
    assert len(created["id"]) == 36
    with pytest.raises(GraphError) as err:
        tenant.create(USERS, {"id": created["id"]})
    assert err.value.status == 409
    with pytest.raises(GraphError) as err:
        tenant.create(USERS, {"userPrincipalName": "A@x.test"})
    assert err.value.status == 400


def test_adding_a_member_twice_or_an_unknown_member_fails():
    tenant = make_tenant(2, groups=[group("g1", ["u01"])])
    with pytest.raises(GraphError) as err:
        tenant.add_member("g1", "u01")
    assert err.value.status == 400
    with pytest.raises(GraphError) as err:
        tenant.add_member("g1", "nobody")
    assert err.value.status == 404
    with pytest.raises(GraphError) as err:
        tenant.remove_member("g1", "u00")
    assert err.value.status == 404


# --------------------------------------------------------------------------- a replica kept by delta rounds


class Replica:
    """What a client builds from delta rounds."""

    def __init__(self):
        self.users: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.members: dict[str, set[str]] = {}
        self.tokens: dict[str, str | None] = {USERS: None, GROUPS: None}

    def apply(self, kind: str, items: list[dict]) -> None:
        store = self.users if kind == USERS else self.groups
        for item in items:
            oid = item["id"]
            if "@removed" in item:
                store.pop(oid, None)
                self.members.pop(oid, None)
                continue
            previous = store.get(oid, {})
            store[oid] = {k: v for k, v in item.items() if k not in ("members@delta", "manager@delta")}
            if kind == USERS:
                manager = previous.get("manager")
                for ref in item.get("manager@delta", []):
                    manager = None if "@removed" in ref else {"id": ref["id"]}
                if manager:
                    store[oid]["manager"] = manager
            if kind == GROUPS:
                current = self.members.setdefault(oid, set())
                for m in item.get("members@delta", []):
                    if "@removed" in m:
                        current.discard(m["id"])
                    else:
                        current.add(m["id"])


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["create_user", "update_user", "manager_user", "soft_user", "hard_user", "restore_user", "create_group",
             "update_group", "soft_group", "hard_group", "restore_group", "add", "remove", "round_users", "round_groups",
             "interleaved_round"]
        ),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    min_size=5,
    max_size=40,
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, page_size=st.integers(1, 4), members_page_size=st.integers(1, 3))
def test_delta_rounds_keep_a_replica_equal_to_the_tenant(ops, page_size, members_page_size):
    tenant = make_tenant(4, groups=[group("g0", ["u00", "u01"]), group("g1", ["g0", "u02"])],
                         page_size=page_size, members_page_size=members_page_size)
    replica = Replica()
    counter = [100]

    def ids(kind, status):
        return sorted(oid for oid in tenant._logs[kind].latest if tenant.status(kind, oid) == status)

    def pick(seq, r):
        return seq[r % len(seq)] if seq else None

    def snapshot():
        doc = tenant.export()
        users = {}
        for user in doc["users"]:
            manager = user.pop("manager", None)
            if manager:
                user["manager"] = {"id": manager["id"]}
            users[user["id"]] = user
        groups = {g["id"]: {k: v for k, v in g.items() if k != "members"} for g in doc["groups"]}
        members = {g["id"]: {m["id"] for m in g["members"]} for g in doc["groups"]}
        return users, groups, members

    def run_round(kind, mutate_between=None):
        expected = snapshot()
        page = tenant.delta(kind, token=replica.tokens[kind])
        items = list(page.items)
        while page.next_token:
            if mutate_between:
                mutate_between()
            page = tenant.delta(kind, token=page.next_token)
            items.extend(page.items)
        replica.apply(kind, items)
        replica.tokens[kind] = page.delta_token
        users, groups, members = expected
        if kind == USERS:
            assert replica.users == users
        else:
            assert replica.groups == groups
            assert replica.members == members

    def mutate(op, a, b):
        present_users, present_groups = ids(USERS, "present"), ids(GROUPS, "present")
        try:
            if op == "create_user":
                counter[0] += 1
                tenant.create(USERS, {"id": f"u{counter[0]}", "displayName": f"N{a}"})
            elif op == "update_user" and present_users:
                tenant.update(USERS, pick(present_users, a), {"displayName": f"D{b}"})
            elif op == "manager_user" and present_users:
                manager = None if b % 3 == 0 else {"id": pick(present_users, b)}
                tenant.update(USERS, pick(present_users, a), {"manager": manager})
            elif op == "soft_user" and present_users:
                tenant.delete(USERS, pick(present_users, a))
            elif op == "hard_user":
                pool = present_users + ids(USERS, "softDeleted")
                if pool:
                    tenant.delete(USERS, pick(pool, a), permanent=True)
            elif op == "restore_user" and ids(USERS, "softDeleted"):
                tenant.restore(USERS, pick(ids(USERS, "softDeleted"), a))
            elif op == "create_group":
                counter[0] += 1
                chosen = sorted({pick(present_users, a), pick(present_users, b)} - {None})
                tenant.create(GROUPS, {"id": f"g{counter[0]}", "members": [{"id": m} for m in chosen]})
            elif op == "update_group" and present_groups:
                tenant.update(GROUPS, pick(present_groups, a), {"description": f"D{b}"})
            elif op == "soft_group" and present_groups:
                tenant.delete(GROUPS, pick(present_groups, a))
            elif op == "hard_group":
                pool = present_groups + ids(GROUPS, "softDeleted")
                if pool:
                    tenant.delete(GROUPS, pick(pool, a), permanent=True)
            elif op == "restore_group" and ids(GROUPS, "softDeleted"):
                tenant.restore(GROUPS, pick(ids(GROUPS, "softDeleted"), a))
            elif op == "add" and present_groups:
                tenant.add_member(pick(present_groups, a), pick(present_users + present_groups, b))
            elif op == "remove" and present_groups:
                gid = pick(present_groups, a)
                current = [m["id"] for m in tenant.members_of(gid)]
                if current:
                    tenant.remove_member(gid, pick(current, b))
        except GraphError as exc:
            assert exc.status in (400, 404)

    for op, a, b in ops:
        if op == "round_users":
            run_round(USERS)
        elif op == "round_groups":
            run_round(GROUPS)
        elif op == "interleaved_round":
            kind = USERS if a % 2 else GROUPS
            between = ["update_user", "add", "remove", "soft_user", "create_user", "hard_group", "manager_user"][b % 7]
            run_round(kind, mutate_between=lambda op=between, a=a, b=b: mutate(op, a, b))
        else:
            mutate(op, a, b)
    run_round(USERS)
    run_round(GROUPS)


# --------------------------------------------------------------------------- manager@delta


def manager_deltas(items) -> dict[str, list[dict] | None]:
    return {i["id"]: i.get("manager@delta") for i in items}


def test_users_delta_carries_the_manager_as_manager_delta_never_as_a_manager_object():
    tenant = make_tenant(3)
    items = flat(full_round(tenant, USERS)[0])
    assert all("manager" not in i for i in items)
    assert manager_deltas(items)["u02"] == [{"@odata.type": USER_T, "id": "u00"}]
    items = flat(full_round(tenant, USERS, select="displayName")[0])
    assert all("manager" not in i and "manager@delta" not in i for i in items)


def test_manager_delta_names_changes_only_and_removes_a_cleared_manager():
    tenant = make_tenant(4)
    _, delta = full_round(tenant, USERS, select="displayName,manager")
    tenant.update(USERS, "u01", {"manager": {"id": "u02"}})
    tenant.update(USERS, "u02", {"displayName": "Renamed"})
    tenant.update(USERS, "u03", {"manager": None})
    pages, delta = full_round(tenant, USERS, token=delta)
    got = manager_deltas(flat(pages))
    assert got == {
        "u01": [{"@odata.type": USER_T, "id": "u02"}],
        "u02": None,  # its manager did not change
        "u03": [{"@odata.type": USER_T, "id": "u00", "@removed": {"reason": "deleted"}}],
    }
    # Back and forth within one round is no change; a round without changes is empty.
    tenant.update(USERS, "u01", {"manager": {"id": "u03"}})
    tenant.update(USERS, "u01", {"manager": {"id": "u02"}})
    pages, delta = full_round(tenant, USERS, token=delta)
    assert manager_deltas(flat(pages)) == {"u01": None}
    assert flat(full_round(tenant, USERS, token=delta)[0]) == []


def test_a_restored_user_names_its_manager_and_a_contact_manager_keeps_its_type():
    tenant = make_tenant(3)
    tenant.create("contacts", {"id": "c1", "displayName": "Outside Boss"})
    tenant.update(USERS, "u02", {"manager": {"id": "c1"}})
    _, delta = full_round(tenant, USERS)
    tenant.delete(USERS, "u01")
    _, delta2 = full_round(tenant, USERS, token=delta)
    tenant.restore(USERS, "u01")
    items = flat(full_round(tenant, USERS, token=delta2)[0])
    assert manager_deltas(items) == {"u01": [{"@odata.type": USER_T, "id": "u00"}]}
    full = manager_deltas(flat(full_round(tenant, USERS)[0]))
    assert full["u02"] == [{"@odata.type": "#microsoft.graph.orgContact", "id": "c1"}]


def test_a_user_restored_without_its_old_manager_removes_it():
    tenant = make_tenant(3)
    _, delta = full_round(tenant, USERS)
    tenant.delete(USERS, "u01")
    tenant.restore(USERS, "u01")
    tenant.update(USERS, "u01", {"manager": None})
    items = flat(full_round(tenant, USERS, token=delta)[0])
    assert manager_deltas(items) == {"u01": [{"@odata.type": USER_T, "id": "u00", "@removed": {"reason": "deleted"}}]}


# --------------------------------------------------------------------------- members of other types

OTHER_TYPES = {
    "devices": "#microsoft.graph.device",
    "servicePrincipals": "#microsoft.graph.servicePrincipal",
    "contacts": "#microsoft.graph.orgContact",
}


def mixed_tenant() -> Tenant:
    tenant = Tenant(settings=Settings(), clock=Clock())
    tenant.load({
        "users": [{"id": "u1", "displayName": "User 1"}],
        "devices": [{"id": "d1", "displayName": "Laptop 1", "deviceId": "0000-d1"}],
        "servicePrincipals": [{"id": "s1", "displayName": "Build agent", "appId": "app-1"}],
        "contacts": [{"id": "c1", "displayName": "Supplier", "mail": "s@elsewhere.test"}],
        "groups": [
            {"id": "g2", "displayName": "Inner"},
            {"id": "g1", "displayName": "Mixed", "members": [
                {"@odata.type": USER_T, "id": "u1"}, {"id": "d1"}, {"@odata.type": OTHER_TYPES["servicePrincipals"], "id": "s1"},
                {"id": "c1"}, {"id": "g2"}]},
        ],
    })
    return tenant


def test_groups_hold_members_of_every_directory_type_and_keep_their_types():
    tenant = mixed_tenant()
    items = {i["id"]: i for i in flat(full_round(tenant, GROUPS)[0])}
    assert items["g1"]["members@delta"] == [
        {"@odata.type": USER_T, "id": "u1"},
        {"@odata.type": OTHER_TYPES["devices"], "id": "d1"},
        {"@odata.type": OTHER_TYPES["servicePrincipals"], "id": "s1"},
        {"@odata.type": OTHER_TYPES["contacts"], "id": "c1"},
        {"@odata.type": GROUP_T, "id": "g2"},
    ]
    page = tenant.members_page("g1", select="displayName")
    assert page.items[1] == {"@odata.type": OTHER_TYPES["devices"], "id": "d1", "displayName": "Laptop 1"}
    exported = tenant.export()
    assert [d["id"] for d in exported["devices"]] == ["d1"]
    assert {m["@odata.type"] for m in exported["groups"][1]["members"]} == {USER_T, GROUP_T, *OTHER_TYPES.values()}
    assert tenant.counts()["devices"] == 1 and tenant.counts()["contacts"] == 1


def test_adding_and_deleting_members_of_other_types_shows_in_members_delta():
    tenant = mixed_tenant()
    _, delta = full_round(tenant, GROUPS)
    tenant.create("devices", {"id": "d2", "displayName": "Phone"})
    tenant.add_member("g2", "d2")
    tenant.add_member("g2", "s1", OTHER_TYPES["servicePrincipals"])
    tenant.delete("contacts", "c1")
    merged = merged_members(flat(full_round(tenant, GROUPS, token=delta)[0]))
    assert merged["g2"] == [{"@odata.type": OTHER_TYPES["devices"], "id": "d2"},
                            {"@odata.type": OTHER_TYPES["servicePrincipals"], "id": "s1"}]
    assert merged["g1"] == [{"@odata.type": OTHER_TYPES["contacts"], "id": "c1", "@removed": {"reason": "deleted"}}]
    with pytest.raises(GraphError) as err:
        tenant.add_member("g2", "d2", OTHER_TYPES["contacts"])  # not a contact
    assert err.value.status == 404
    with pytest.raises(GraphError):
        tenant.create("devices", {"id": "u1"})  # ids are unique across every type


# ---------------------------------------------------------------- passwordProfile, as Graph returns it

def test_password_profile_is_returned_only_on_select_and_never_with_a_password():
    tenant = Tenant(settings=Settings(), clock=Clock())
    tenant.create(USERS, {"id": "p1", "displayName": "P",
                          "passwordProfile": {"password": "Secret-Pass-1", "forceChangePasswordNextSignIn": True}})
    (item,) = flat(full_round(tenant, USERS)[0])
    assert "passwordProfile" not in item
    (item,) = flat(full_round(tenant, USERS, select="passwordProfile,displayName")[0])
    assert item["passwordProfile"] == {"password": None, "forceChangePasswordNextSignIn": True,
                                       "forceChangePasswordNextSignInWithMfa": False}
    assert tenant.get(USERS, "p1", select="passwordProfile")["passwordProfile"]["password"] is None
    assert "Secret-Pass-1" not in repr(tenant.export())


def test_a_user_without_a_password_profile_reads_null():
    tenant = Tenant(settings=Settings(), clock=Clock())
    tenant.create(USERS, {"id": "p1", "displayName": "P"})
    assert tenant.get(USERS, "p1", select="passwordProfile") == {"id": "p1", "passwordProfile": None}


def test_setting_a_password_moves_last_password_change_and_the_change_is_in_the_next_delta_round():
    clock = Clock(1_800_000_000.0)
    tenant = Tenant(settings=Settings(), clock=clock)
    tenant.create(USERS, {"id": "p1", "displayName": "P", "lastPasswordChangeDateTime": "2020-01-01T00:00:00Z"})
    _, token = full_round(tenant, USERS, select="passwordProfile,lastPasswordChangeDateTime")
    clock.now += 60
    tenant.update(USERS, "p1", {"passwordProfile": {"password": "New-Pass-2", "forceChangePasswordNextSignIn": True}})
    (item,) = flat(full_round(tenant, USERS, token=token)[0])
    assert item["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    assert item["lastPasswordChangeDateTime"] == "2027-01-15T08:01:00Z"
    # flags alone (no password) leave the time as it was
    tenant.update(USERS, "p1", {"passwordProfile": {"forceChangePasswordNextSignIn": False}})
    assert tenant.get(USERS, "p1", select="lastPasswordChangeDateTime")["lastPasswordChangeDateTime"] == \
        "2027-01-15T08:01:00Z"
