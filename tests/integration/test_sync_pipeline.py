"""The whole pipeline, stage by stage as the DAG runs it, against the emulator and a real Samba DC."""

from __future__ import annotations

import pytest

from domain_sync.runs import RunFolder, read_json
from tests.fixtures.sync_env import by_sam, delete_subtree, first, tenant_group, tenant_user

pytestmark = pytest.mark.integration


def small_tenant():
    ana = tenant_user("ana", "Ana Lima", city="Oslo", jobTitle="Engineer", businessPhones=["+47 123"],
                      proxyAddresses=["SMTP:ana@contoso.example", "smtp:al@contoso.example"])
    bob = tenant_user("bob", "Bob Stone", accountEnabled=False, passwordPolicies="DisablePasswordExpiration")
    zoe = tenant_user("zoe", "Zoë Ærø", manager={"id": ana["id"]})
    dup = tenant_user("ana2", "Ana Lima")
    inner = tenant_group("Engineers", [ana, zoe], description="builders")
    outer = tenant_group("All Staff", [bob, inner])
    return {"users": [ana, bob, zoe, dup], "groups": [inner, outer]}, {"ana": ana, "bob": bob, "zoe": zoe,
                                                                        "dup": dup, "inner": inner, "outer": outer}


def test_first_sync_creates_every_object_with_mapped_attributes_and_memberships(sync_env):
    tenant, o = small_tenant()
    sync_env.start_tenant(tenant)
    result = sync_env.run()
    assert result["apply"]["statuses"] == {"applied": result["apply"]["planned"]}
    entries = by_sam(sync_env.synced_entries())
    assert set(entries) == {"ana", "bob", "zoe", "ana2", "Engineers", "AllStaff"}

    ana_dn, ana = entries["ana"]
    assert first(ana["userprincipalname"]) == "ana@contoso.example"
    assert first(ana["givenname"]) == "Ana" and first(ana["sn"]) == "Lima"
    assert first(ana["l"]) == "Oslo" and first(ana["title"]) == "Engineer"
    assert first(ana["telephonenumber"]) == "+47 123"
    assert sorted(ana["proxyaddresses"]) == ["SMTP:ana@contoso.example", "smtp:al@contoso.example"]
    assert int(first(ana["useraccountcontrol"])) & 0x2 == 0
    bob = entries["bob"][1]
    assert int(first(bob["useraccountcontrol"])) & 0x2 and int(first(bob["useraccountcontrol"])) & 0x10000
    zoe_dn, zoe = entries["zoe"]
    assert first(zoe["displayname"]) == "Zoë Ærø"
    assert first(zoe["manager"]).lower() == ana_dn.lower()
    # Two users share the display name "Ana Lima": distinct cns in one container.
    assert ana_dn != entries["ana2"][0] and "Ana Lima (" in ana_dn

    inner_dn, inner = entries["Engineers"]
    assert sorted(m.lower() for m in inner["member"]) == sorted([ana_dn.lower(), zoe_dn.lower()])
    outer = entries["AllStaff"][1]
    assert sorted(m.lower() for m in outer["member"]) == sorted([entries["bob"][0].lower(), inner_dn.lower()])
    assert int(first(inner["grouptype"])) == -2147483646
    assert result["report"]["total_writes"] > 0


def test_second_run_without_tenant_changes_writes_nothing(sync_env):
    tenant, _ = small_tenant()
    sync_env.start_tenant(tenant)
    sync_env.run()
    usn = sync_env.highest_usn()
    second = sync_env.run()
    assert second["plan"]["changes"] == 0
    assert second["apply"]["total_writes"] == 0
    assert sync_env.highest_usn() == usn, "the domain recorded a write"


def test_added_renamed_and_deleted_users_and_membership_changes_follow(sync_env):
    tenant, o = small_tenant()
    emu = sync_env.start_tenant(tenant)
    sync_env.run()
    before = by_sam(sync_env.synced_entries(["objectGUID", "sAMAccountName", "member"]))

    new = tenant_user("carl", "Carl Berg")
    emu.admin.create_user(new)
    emu.admin.update_user(o["ana"]["id"], {"displayName": "Ana Lima-Berg"})
    emu.admin.delete_user(o["dup"]["id"], permanent=True)
    emu.admin.add_member(o["inner"]["id"], new["id"])
    emu.admin.remove_member(o["inner"]["id"], o["zoe"]["id"])
    result = sync_env.run()

    after = by_sam(sync_env.synced_entries(["objectGUID", "sAMAccountName", "member", "displayName"]))
    assert "carl" in after and "ana2" not in after
    ana_dn, ana = after["ana"]
    assert ana_dn.startswith("CN=Ana Lima-Berg,") and first(ana["displayname"]) == "Ana Lima-Berg"
    assert ana["objectguid"] == before["ana"][1]["objectguid"], "rename must keep the object"
    members = sorted(m.lower() for m in after["Engineers"][1]["member"])
    assert members == sorted([ana_dn.lower(), after["carl"][0].lower()])
    assert result["plan"]["counts"]["user.delete"] == 1 and result["plan"]["counts"]["user.rename"] == 1


def test_soft_deleted_user_is_disabled_and_restored_user_enabled(sync_env):
    tenant, o = small_tenant()
    emu = sync_env.start_tenant(tenant)
    sync_env.run()
    emu.admin.delete_user(o["ana"]["id"])
    sync_env.run()
    assert int(first(by_sam(sync_env.synced_entries())["ana"][1]["useraccountcontrol"])) & 0x2
    emu.admin.restore_user(o["ana"]["id"])
    sync_env.run()
    assert int(first(by_sam(sync_env.synced_entries())["ana"][1]["useraccountcontrol"])) & 0x2 == 0


def test_a_full_read_keeps_a_soft_deleted_user_disabled_and_a_restore_enables_the_same_account(sync_env):
    tenant, o = small_tenant()
    emu = sync_env.start_tenant(tenant)
    sync_env.run()
    before = by_sam(sync_env.synced_entries(["sAMAccountName", "objectGUID", "objectSid"]))["ana"][1]
    emu.admin.delete_user(o["ana"]["id"])  # soft delete: Graph's full reads no longer list the user
    sync_env.run()
    resync = sync_env.run(full_resync=True)
    assert "user.delete" not in resync["plan"]["counts"], resync["plan"]
    entries = by_sam(sync_env.synced_entries())
    assert int(first(entries["ana"][1]["useraccountcontrol"])) & 0x2, "the soft-deleted user is not disabled"
    emu.admin.restore_user(o["ana"]["id"])
    sync_env.run()
    after = by_sam(sync_env.synced_entries(["sAMAccountName", "objectGUID", "objectSid", "userAccountControl"]))
    assert int(first(after["ana"][1]["useraccountcontrol"])) & 0x2 == 0
    assert first(after["ana"][1]["objectguid"]) == first(before["objectguid"])
    assert first(after["ana"][1]["objectsid"]) == first(before["objectsid"])


def test_local_objects_without_the_anchor_survive_every_run(sync_env):
    tenant, o = small_tenant()
    emu = sync_env.start_tenant(tenant)
    sync_env.run()
    conn = sync_env.ldap()
    local_dn = f"CN=Local Printer Admin,{sync_env.container_dn}"
    assert conn.add(local_dn, ["top", "person", "organizationalPerson", "user"],
                    {"sAMAccountName": "lpadmin", "displayName": "Local", "userAccountControl": "514"}), conn.result
    # A local user that is also a member of a synced group: the sync must not remove it.
    groups = by_sam(sync_env.synced_entries())
    from ldap3 import MODIFY_ADD

    assert conn.modify(groups["Engineers"][0], {"member": [(MODIFY_ADD, [local_dn])]}), conn.result
    conn.search(local_dn, "(objectClass=*)", search_scope="BASE", attributes=["uSNChanged"])
    usn_before = conn.response[0]["attributes"]["uSNChanged"]
    conn.unbind()

    emu.admin.update_user(o["ana"]["id"], {"city": "Rome"})
    sync_env.run()
    sync_env.run(full_resync=True)

    conn = sync_env.ldap()
    conn.search(local_dn, "(objectClass=*)", search_scope="BASE", attributes=["uSNChanged", "displayName"])
    assert conn.response and conn.response[0]["attributes"]["uSNChanged"] == usn_before
    conn.unbind()
    members = [m.lower() for m in by_sam(sync_env.synced_entries())["Engineers"][1]["member"]]
    assert local_dn.lower() in members


def test_swapped_names_and_a_name_freed_by_a_rename_apply_in_one_run(sync_env):
    tenant, o = small_tenant()
    emu = sync_env.start_tenant(tenant)
    sync_env.run()
    before = by_sam(sync_env.synced_entries(["objectGUID", "sAMAccountName"]))

    emu.admin.update_user(o["bob"]["id"], {"displayName": "Zoë Ærø"})
    emu.admin.update_user(o["zoe"]["id"], {"displayName": "Bob Stone"})
    emu.admin.update_group(o["inner"]["id"], {"displayName": "Builders"})
    emu.admin.create_group(tenant_group("Engineers", [o["ana"]]))
    result = sync_env.run()
    assert result["apply"]["statuses"].get("failed", 0) == 0

    after = by_sam(sync_env.synced_entries(["objectGUID", "sAMAccountName", "member"]))
    assert after["bob"][0].startswith("CN=Zoë Ærø,") and after["zoe"][0].startswith("CN=Bob Stone,")
    assert after["bob"][1]["objectguid"] == before["bob"][1]["objectguid"]
    assert after["Engineers"][0].startswith("CN=Builders,")
    assert [dn for dn, e in after.values() if dn.startswith("CN=Engineers,")]
    assert sync_env.run()["plan"]["changes"] == 0


def test_hand_edits_in_the_domain_are_put_back_and_reported_as_drift_never_duplicated(sync_env):
    """An admin changes a synced attribute, renames one object, moves one within the container, removes a
    member and moves one out of the search base: the next run puts the tenant's truth back, reports the
    drift, and never creates a second object for the one moved out."""
    tenant, o = small_tenant()
    sync_env.start_tenant(tenant)
    sync_env.run()
    entries = by_sam(sync_env.synced_entries())
    conn = sync_env.ldap()
    sub = f"OU=Moved by hand,{sync_env.container_dn}"
    outside = f"OU=Outside by hand,{sync_env.domain.base_dn}"
    try:
        assert conn.modify(entries["ana"][0], {"title": [("MODIFY_REPLACE", ["Changed by hand"])]}), conn.result
        assert conn.modify_dn(entries["zoe"][0], "CN=Renamed by hand"), conn.result
        assert conn.add(sub, ["organizationalUnit"], {}), conn.result
        assert conn.modify_dn(entries["bob"][0], "CN=Bob Stone", new_superior=sub), conn.result
        zoe_now = f"CN=Renamed by hand,{sync_env.container_dn}"
        assert conn.modify(entries["Engineers"][0], {"member": [("MODIFY_DELETE", [zoe_now])]}), conn.result
        assert conn.add(outside, ["organizationalUnit"], {}), conn.result
        assert conn.modify_dn(entries["ana2"][0], entries["ana2"][0].split(",", 1)[0], new_superior=outside), \
            conn.result

        result = sync_env.run()
        assert result["apply"]["failed"] == []
        assert result["plan"]["drift_corrected"] == {"changed_in_domain": 3, "memberships_changed": 1}, \
            result["plan"]
        after = by_sam(sync_env.synced_entries())
        assert first(after["ana"][1]["title"]) == "Engineer"
        assert after["zoe"][0] == entries["zoe"][0] and after["bob"][0] == entries["bob"][0]
        assert sorted(m.lower() for m in after["Engineers"][1]["member"]) == sorted(
            [entries["ana"][0].lower(), entries["zoe"][0].lower()])
        # The object moved out of the search base: left alone there, not created again, reported.
        assert "ana2" not in after
        run = RunFolder(sync_env.settings.runs_dir, f"manual__test-{sync_env.runs}")
        collisions = [c for c in read_json(run.collisions, []) if c["anchor"] == o["dup"]["id"]]
        assert [c["attribute"] for c in collisions] == ["searchBase"], collisions
        assert sync_env.run()["plan"]["changes"] == 0
    finally:
        delete_subtree(conn, outside)
        conn.unbind()
