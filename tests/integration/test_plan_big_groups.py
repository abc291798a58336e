"""A group holding many users, against the real Samba DC: an incremental plan whose changed objects are some of
its members reads the group without its member values and diffs its membership for those members alone (their
memberOf), with the full reconcile's change set; a group changed by hand is read with all its member values."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

from domain_sync.domain import ldap_values
from domain_sync.plan.observed import SyncedCollector
from domain_sync.records import Op
from domain_sync.runs import RunFolder
from domain_sync.storage import read_json, read_parquet
from tests.fixtures.convergence import sync
from tests.fixtures.sync_env import by_sam, tenant_group, tenant_user

pytestmark = pytest.mark.integration

USERS = 120


def count_member_values(monkeypatch) -> dict[str, dict[str, int]]:
    """{plan mode: {DN of a group read: member values parsed}}, counted from now on."""
    parsed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    add = SyncedCollector.add

    def counting(self, entry, extra=()):
        mode = os.environ.get("DOMAIN_SYNC_PLAN_MODE", "")
        parsed[mode][entry["dn"].lower()] += len(ldap_values(entry["attributes"].get("member")))
        return add(self, entry, extra)

    monkeypatch.setattr(SyncedCollector, "add", counting)
    return parsed


def synced_comparing_plans(sync_env, run_id: str, parsed: dict) -> dict:
    """Run every stage, the plan made both ways (no difference allowed); the plan file. Counts start afresh."""
    for counts in parsed.values():
        counts.clear()
    results, problems = sync(sync_env, run_id, compare_plans=True)
    assert not problems, "\n".join(problems)
    return read_json(RunFolder(sync_env.settings.runs_dir, run_id).plan, {})


def test_a_big_group_with_changed_members_is_not_read_whole_and_gets_the_full_plans_changes(sync_env, monkeypatch):
    sync_env.set(plan_mode="incremental")
    users = [tenant_user(f"u{i:03d}", f"User {i:03d}") for i in range(USERS)]
    last = users[-1]
    everyone = tenant_group("Everyone", users[:-1])
    team = tenant_group("Team", users[:5])
    emu = sync_env.start_tenant({"users": users, "groups": [everyone, team]})

    parsed = count_member_values(monkeypatch)  # by plan mode, then by the DN of the group read

    def synced(run_id: str) -> dict:
        return synced_comparing_plans(sync_env, run_id, parsed)

    synced("big-1")
    synced("big-2")  # everything the first run created changed in the domain: a full reconcile, nothing to write
    entries = by_sam(sync_env.synced_entries(["sAMAccountName"]))
    index = read_parquet(RunFolder(sync_env.settings.runs_dir, "big-2").domain_index)
    guid = dict(zip(index["anchor"], index["guid"], strict=True))
    dn_of = {u["id"]: entries[u["mailNickname"]][0] for u in users}
    everyone_dn = entries["Everyone"][0]

    # A member removed and a non-member added by hand, u005 dropped from Everyone in the tenant while its record is
    # quarantined (a UPN validation refuses: it keeps its memberships), u002 changed: Everyone changed on both
    # sides, so it is read whole.
    conn = sync_env.ldap()
    try:
        assert conn.modify(everyone_dn, {"member": [("MODIFY_DELETE", [dn_of[users[1]["id"]]]),
                                                   ("MODIFY_ADD", [dn_of[last["id"]]])]}), conn.result
    finally:
        conn.unbind()
    emu.admin.update_user(users[5]["id"], {"userPrincipalName": "not a upn"})
    emu.admin.remove_member(everyone["id"], users[5]["id"])
    emu.admin.update_user(users[2]["id"], {"jobTitle": "Lead"})
    plan = synced("big-3")
    assert plan["plan_mode"]["mode"] == "incremental"
    assert parsed["incremental"][everyone_dn.lower()] == USERS - 1
    moves = {(c["op"], m) for c in plan["changes"] if c["anchor"] == everyone["id"] for m in c.get("members") or []}
    assert moves == {(Op.ADD_MEMBERS, f"<GUID={guid[users[1]['id']]}>"),
                     (Op.REMOVE_MEMBERS, f"<GUID={guid[last['id']]}>")}
    synced("big-4")  # the run after the writes to Everyone reads it whole once more; nothing to write

    # Only members changed: u005's record is valid again (released from quarantine, so Everyone drops it now),
    # u003 changed in place (its title: Team, which holds it, has nothing to diff). Everyone is read without its
    # member values.
    conn = sync_env.ldap()
    try:
        conn.search(everyone_dn, "(objectClass=*)", search_scope="BASE", attributes=["member"])
        held = len(ldap_values(conn.response[0]["attributes"].get("member")))
    finally:
        conn.unbind()
    emu.admin.update_user(users[5]["id"], {"userPrincipalName": users[5]["userPrincipalName"]})
    emu.admin.update_user(users[3]["id"], {"jobTitle": "Head"})
    plan = synced("big-5")
    assert plan["plan_mode"]["mode"] == "incremental" and plan["plan_mode"]["groups_read_without_members"] == 1
    assert parsed["full"][everyone_dn.lower()] == held
    assert everyone_dn.lower() in parsed["incremental"] and parsed["incremental"][everyone_dn.lower()] == 0
    assert sum(parsed["incremental"].values()) == 0
    moves = {(c["op"], m) for c in plan["changes"] if c["anchor"] == everyone["id"] for m in c.get("members") or []}
    assert moves == {(Op.REMOVE_MEMBERS, f"<GUID={guid[users[5]['id']]}>")}
    index = read_parquet(RunFolder(sync_env.settings.runs_dir, "big-5").domain_index)
    counts = dict(zip(index["anchor"], index["members"], strict=True))
    assert counts[everyone["id"]] == held - 1 and counts[team["id"]] == 5  # as this plan leaves Everyone



def test_a_group_the_tenant_changed_only_through_members_is_diffed_for_those_members(sync_env, monkeypatch):
    sync_env.set(plan_mode="incremental")
    users = [tenant_user(f"m{i:03d}", f"Member {i:03d}") for i in range(60)]
    outsider = tenant_user("outsider", "Out Sider")
    everyone = tenant_group("Everyone", users)
    team = tenant_group("Team", users[:4] + [outsider])
    emu = sync_env.start_tenant({"users": [*users, outsider], "groups": [everyone, team]})
    counted = count_member_values(monkeypatch)
    parsed = counted["incremental"]

    def synced(run_id: str) -> dict:
        return synced_comparing_plans(sync_env, run_id, counted)

    def moves(plan: dict, group: dict) -> set[tuple[str, str]]:
        return {(c["op"], m) for c in plan["changes"] if c["anchor"] == group["id"] for m in c.get("members") or []}

    synced("members-1")
    synced("members-2")
    index = read_parquet(RunFolder(sync_env.settings.runs_dir, "members-2").domain_index)
    guid = dict(zip(index["anchor"], index["guid"], strict=True))
    everyone_dn = by_sam(sync_env.synced_entries(["sAMAccountName"]))["Everyone"][0].lower()

    # The tenant adds one member, removes one and deletes a third user: Everyone comes in the group round with
    # its record unchanged, so only those three members are read (whole) and diffed; none of its 60 values is.
    emu.admin.add_member(everyone["id"], outsider["id"], "#microsoft.graph.user")
    emu.admin.remove_member(everyone["id"], users[7]["id"])
    emu.admin.delete_user(users[9]["id"])
    plan = synced("members-3")
    assert plan["plan_mode"]["mode"] == "incremental", plan["plan_mode"]
    assert plan["plan_mode"]["changed_by_reason"].get("members_changed_in_tenant") == 2  # the outsider and m007
    assert everyone_dn in parsed and parsed[everyone_dn] == 0
    assert moves(plan, everyone) == {(Op.ADD_MEMBERS, f"<GUID={guid[outsider['id']]}>"),
                                     (Op.REMOVE_MEMBERS, f"<GUID={guid[users[7]['id']]}>"),
                                     (Op.REMOVE_MEMBERS, f"<GUID={guid[users[9]['id']]}>")}
    # The index keeps Everyone's count as the plan leaves it (60 + 1 - 2), not its last whole read's (60).
    index = read_parquet(RunFolder(sync_env.settings.runs_dir, "members-3").domain_index)
    assert dict(zip(index["anchor"], index["members"], strict=True))[everyone["id"]] == 59
    synced("members-4")

    # A mapped property of Everyone changes with a member: its record differs, so it is read whole.
    emu.admin.update_group(everyone["id"], {"description": "All of us"})
    emu.admin.remove_member(everyone["id"], users[11]["id"])
    plan = synced("members-5")
    assert plan["plan_mode"]["mode"] == "incremental"
    assert "members_changed_in_tenant" not in plan["plan_mode"]["changed_by_reason"]
    assert parsed[everyone_dn] == 59  # 60 and the outsider, less m007 and m009
    assert moves(plan, everyone) == {(Op.REMOVE_MEMBERS, f"<GUID={guid[users[11]['id']]}>")}

    # Changed by hand in the domain as well as by members in the tenant: read whole.
    synced("members-6")
    conn = sync_env.ldap()
    try:
        assert conn.modify(everyone_dn, {"member": [("MODIFY_DELETE", [f"<GUID={guid[users[20]['id']]}>"])]}), \
            conn.result
    finally:
        conn.unbind()
    emu.admin.remove_member(everyone["id"], users[21]["id"])
    plan = synced("members-7")
    assert "members_changed_in_tenant" not in plan["plan_mode"]["changed_by_reason"]
    assert parsed[everyone_dn] == 57  # less m011 and the one removed by hand
    assert moves(plan, everyone) == {(Op.ADD_MEMBERS, f"<GUID={guid[users[20]['id']]}>"),
                                     (Op.REMOVE_MEMBERS, f"<GUID={guid[users[21]['id']]}>")}


def test_what_names_an_object_changed_in_place_is_not_read_again(sync_env, monkeypatch):
    sync_env.set(plan_mode="incremental")
    boss = tenant_user("boss", "Big Boss")
    reports = [tenant_user(f"r{i:02d}", f"Report {i:02d}", manager={"id": boss["id"]}) for i in range(30)]
    crew = tenant_group("Crew", [boss, *reports[:10]])
    emu = sync_env.start_tenant({"users": [boss, *reports], "groups": [crew]})
    counted = count_member_values(monkeypatch)

    def synced(run_id: str) -> dict:
        return synced_comparing_plans(sync_env, run_id, counted)

    synced("place-1")
    synced("place-2")
    # The boss's title changes: its cn stays, so its 30 reports and its group are not read (nor diffed).
    emu.admin.update_user(boss["id"], {"jobTitle": "Chief"})
    plan = synced("place-3")["plan_mode"]
    assert plan["mode"] == "incremental" and plan["changed_set"] == 1 and plan["objects_read"] == 1, plan
    # The boss is renamed: its cn moves, and the domain carries what names it along (the reports' manager and
    # Crew's member value are links), so neither is read again and the full plan's changes come out (compare_plans).
    emu.admin.update_user(boss["id"], {"displayName": "Grand Boss"})
    plan = synced("place-4")
    assert plan["plan_mode"]["mode"] == "incremental" and "dependents" not in plan["plan_mode"]["changed_by_reason"]
    assert plan["plan_mode"]["objects_read"] == 1, plan["plan_mode"]
    assert {c["op"] for c in plan["changes"]} == {Op.RENAME, Op.MODIFY}, plan["changes"]
    conn = sync_env.ldap()
    try:
        boss_dn = next(c["new_dn"] for c in plan["changes"] if c["op"] == Op.RENAME)
        conn.search(boss_dn, "(objectClass=*)", search_scope="BASE", attributes=["directReports", "memberOf"])
        assert len(conn.entries[0]["directReports"].values) == 30 and len(conn.entries[0]["memberOf"].values) == 1
    finally:
        conn.unbind()
    # What names the boss names it at its new DN: a run after the rename (the boss among the domain's changes
    # since, as the last run wrote it) has nothing to write and reads no dependents (full plan too).
    plan = synced("place-5")
    assert plan["changes"] == [] and "dependents" not in plan["plan_mode"]["changed_by_reason"], plan["plan_mode"]
    # Deleted by hand, the boss comes again: its reports and Crew disagree with the records on it now (the
    # domain dropped its links), so they are read and given it back, as the full plan does (compare_plans).
    conn = sync_env.ldap()
    try:
        assert conn.delete(boss_dn), conn.result
    finally:
        conn.unbind()
    plan = synced("place-6")
    assert plan["plan_mode"]["changed_by_reason"].get("dependents") == 31, plan["plan_mode"]
    conn = sync_env.ldap()
    try:
        conn.search(boss_dn, "(objectClass=*)", search_scope="BASE", attributes=["directReports", "memberOf"])
        assert len(conn.entries[0]["directReports"].values) == 30 and len(conn.entries[0]["memberOf"].values) == 1
    finally:
        conn.unbind()
