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


def test_a_big_group_with_changed_members_is_not_read_whole_and_gets_the_full_plans_changes(sync_env, monkeypatch):
    sync_env.set(plan_mode="incremental")
    users = [tenant_user(f"u{i:03d}", f"User {i:03d}") for i in range(USERS)]
    last = users[-1]
    everyone = tenant_group("Everyone", users[:-1])
    team = tenant_group("Team", users[:5])
    emu = sync_env.start_tenant({"users": users, "groups": [everyone, team]})

    # Member values each plan mode parsed, by the DN of the group read.
    parsed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    add = SyncedCollector.add

    def counting(self, entry, extra=()):
        mode = os.environ.get("DOMAIN_SYNC_PLAN_MODE", "")
        parsed[mode][entry["dn"].lower()] += len(ldap_values(entry["attributes"].get("member")))
        return add(self, entry, extra)

    monkeypatch.setattr(SyncedCollector, "add", counting)

    def synced(run_id: str) -> dict:
        parsed.clear()
        results, problems = sync(sync_env, run_id, compare_plans=True)
        assert not problems, "\n".join(problems)
        return read_json(RunFolder(sync_env.settings.runs_dir, run_id).plan, {})

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
    # u003 changed. Everyone is read without its member values, and its member count stays the domain's.
    conn = sync_env.ldap()
    try:
        conn.search(everyone_dn, "(objectClass=*)", search_scope="BASE", attributes=["member"])
        held = len(ldap_values(conn.response[0]["attributes"].get("member")))
    finally:
        conn.unbind()
    emu.admin.update_user(users[5]["id"], {"userPrincipalName": users[5]["userPrincipalName"]})
    emu.admin.update_user(users[3]["id"], {"jobTitle": "Head"})
    plan = synced("big-5")
    assert plan["plan_mode"]["mode"] == "incremental" and plan["plan_mode"]["groups_read_without_members"] == 2
    assert parsed["full"][everyone_dn.lower()] == held
    assert everyone_dn.lower() in parsed["incremental"] and parsed["incremental"][everyone_dn.lower()] == 0
    assert sum(parsed["incremental"].values()) == 0  # Team too: u003 is one of its members
    moves = {(c["op"], m) for c in plan["changes"] if c["anchor"] == everyone["id"] for m in c.get("members") or []}
    assert moves == {(Op.REMOVE_MEMBERS, f"<GUID={guid[users[5]['id']]}>")}
    index = read_parquet(RunFolder(sync_env.settings.runs_dir, "big-5").domain_index)
    counts = dict(zip(index["anchor"], index["members"], strict=True))
    assert counts[everyone["id"]] == held and counts[team["id"]] == 5

