"""Load safety against the real Samba DC: local objects, the deletion guard, moves."""

from __future__ import annotations

import json
import uuid

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.apply.stage import PlanNotApproved
from domain_sync.errors import PermanentError
from domain_sync.pipeline import run_stage
from tests.fixtures.sync_env import by_sam, delete_subtree, first, run_folder, tenant_group, tenant_user, usn_changed

pytestmark = pytest.mark.integration

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]


def test_local_users_holding_a_tenant_users_names_are_untouched_and_reported(sync_env):
    base = sync_env.domain.base_dn
    outside = f"OU=local-{uuid.uuid4().hex[:8]},{base}"
    sam_holder = f"CN=Ana Local,{outside}"
    upn_holder = f"CN=Bob Local,{sync_env.container_dn}"
    conn = sync_env.ldap()
    try:
        assert conn.add(outside, ["organizationalUnit"], {}), conn.result
        assert conn.add(sync_env.container_dn, ["organizationalUnit"], {}), conn.result
        # Elsewhere in the domain: holds the sAMAccountName tenant user ana would get.
        assert conn.add(sam_holder, USER_CLASSES, {"sAMAccountName": "ana", "userAccountControl": "514"}), conn.result
        # In the managed container, without the anchor: holds tenant user bob's userPrincipalName.
        assert conn.add(upn_holder, USER_CLASSES, {"sAMAccountName": "boblocal", "userAccountControl": "514",
                                                   "userPrincipalName": "bob@contoso.example"}), conn.result
        usns = {dn: usn_changed(conn, dn) for dn in (sam_holder, upn_holder)}

        ana, bob, eva = tenant_user("ana", "Ana Lima"), tenant_user("bob", "Bob Stone"), tenant_user("eva", "Eva Berg")
        team = tenant_group("Team", [ana, bob, eva])
        emu = sync_env.start_tenant({"users": [ana, bob, eva], "groups": [team]})
        result = sync_env.run(run_id="collide-1")
        emu.admin.update_user(bob["id"], {"city": "Oslo"})
        sync_env.run(run_id="collide-2", full_resync=True)

        assert {dn: usn_changed(conn, dn) for dn in usns} == usns, "a local object was written"
    finally:
        delete_subtree(conn, outside)
        conn.unbind()

    collisions = json.loads(run_folder(sync_env, "collide-1").collisions.read_text())
    assert sorted((c["anchor"], c["attribute"], c["local_dn"]) for c in collisions) == sorted([
        (ana["id"], "sAMAccountName", sam_holder), (bob["id"], "userPrincipalName", upn_holder)])
    assert result["plan"]["collisions"] == 2
    alerts = [a for a in read_alerts(sync_env.settings) if a["kind"] == "objects_quarantined"]
    assert alerts and "1 quarantined because another object holds their userPrincipalName" in alerts[0]["message"]
    assert "1 given another sAMAccountName because a local object holds theirs" in alerts[0]["message"]

    synced = by_sam(sync_env.synced_entries(["sAMAccountName", "userPrincipalName", "member"]))
    # ana is synced under another sAMAccountName; bob stays out (a UPN cannot be shared); eva as usual.
    ana_sam = next(s for s, (_, e) in synced.items() if first(e.get("userprincipalname")) == "ana@contoso.example")
    assert ana_sam.startswith("ana-")
    assert set(synced) == {ana_sam, "eva", "boblocal", "Team"}
    members = {m.lower() for m in synced["Team"][1]["member"]}
    assert members == {synced[ana_sam][0].lower(), synced["eva"][0].lower()}


@pytest.mark.parametrize("limits, remove", [
    ({"max_deletes": 2}, "delete"),                                          # count limit, hard deletes
    ({"max_delete_share": 0.5, "delete_share_min_objects": 4}, "disable"),  # share limit, soft deletes
])
def test_a_plan_over_the_deletion_threshold_writes_nothing_until_approved(sync_env, limits, remove):
    sync_env.set(**limits)
    users = [tenant_user(f"guard{n}", f"Guard {n}") for n in range(6)]
    emu = sync_env.start_tenant({"users": users, "groups": [tenant_group("Guards", users)]})
    sync_env.run(run_id="guard-1")
    gone = users[:4]
    for user in gone:
        emu.admin.delete_user(user["id"], permanent=remove == "delete")

    usn = sync_env.highest_usn()
    with pytest.raises(PermanentError, match="stopped before any write") as caught:
        sync_env.run(run_id="guard-2")
    assert sync_env.highest_usn() == usn, "a blocked plan wrote to the domain"
    digest = json.loads(run_folder(sync_env, "guard-2").plan.read_text())["digest"]
    assert f"approve_plan={digest}" in str(caught.value)
    preview = run_folder(sync_env, "guard-2").plan_preview.read_text()
    assert "# BLOCKED:" in preview and f"# digest: {digest}" in preview
    # Its apply refuses it as well (a task cleared by hand, a stale plan), approved or not.
    for params in ({}, {"approve_plan": digest}):
        with pytest.raises(PlanNotApproved, match="not approved"):
            run_stage("apply", "guard-2", params)
    assert sync_env.highest_usn() == usn

    approved = sync_env.run(run_id="guard-3", approve_plan=digest)
    assert approved["plan"]["status"] == "approved" and approved["plan"]["digest"] == digest
    assert approved["apply"]["writes"][f"user.{remove}"] == 4
    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "userAccountControl"]))
    if remove == "delete":
        assert set(entries) == {"guard4", "guard5", "Guards"}
    else:
        assert all(int(first(entries[u["mailNickname"]][1]["useraccountcontrol"])) & 0x2 for u in gone)


def test_a_changed_container_moves_objects_keeping_guid_sid_and_memberships(sync_env):
    ana = tenant_user("ana", "Ana Lima")
    bob = tenant_user("bob", "Bob Stone", manager={"id": ana["id"]})
    team = tenant_group("Team", [ana, bob])
    everyone = tenant_group("Everyone", [team])
    sync_env.start_tenant({"users": [ana, bob], "groups": [team, everyone]})
    sync_env.run(run_id="move-1")
    identity = ["objectGUID", "objectSid", "sAMAccountName", "member", "manager"]
    before = by_sam(sync_env.synced_entries(identity))

    new_container = f"OU=Moved,OU=Synced,{sync_env.container}"
    sync_env.set(container=new_container)
    moved = sync_env.run(run_id="move-2")

    assert moved["plan"]["counts"] == {"container.create_container": 2, "user.rename": 2, "group.rename": 2}
    after = by_sam(sync_env.synced_entries(identity))
    new_parent = f"{new_container},{sync_env.domain.base_dn}".lower()
    assert set(after) == set(before) == {"ana", "bob", "Team", "Everyone"}
    for sam, (dn, entry) in after.items():
        assert dn.lower().endswith(new_parent), dn
        assert entry["objectguid"] == before[sam][1]["objectguid"], f"{sam} was recreated"
        assert entry["objectsid"] == before[sam][1]["objectsid"]
    dn = {sam: d.lower() for sam, (d, _) in after.items()}
    assert {m.lower() for m in after["Team"][1]["member"]} == {dn["ana"], dn["bob"]}
    assert {m.lower() for m in after["Everyone"][1]["member"]} == {dn["Team"]}
    assert first(after["bob"][1]["manager"]).lower() == dn["ana"]

    usn = sync_env.highest_usn()
    assert sync_env.run(run_id="move-3")["plan"]["changes"] == 0
    assert sync_env.highest_usn() == usn
