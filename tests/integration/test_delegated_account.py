"""A delegated bind account, as an IT admin gives one to the sync: full control of the sync's organizational
unit and nothing more (no Domain Admin). It writes all the sync writes there and reads the rest of the domain
as any account does, but it sees no deleted object (the Deleted Objects container is the administrators'), not
even one it deleted itself: the incremental plan finds a synced object deleted by hand by its absence."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ldap3.protocol.formatters.formatters import format_sid

from domain_sync.plan.observed import tombstones_visible
from tests.fixtures.convergence import run_scenario
from tests.fixtures.sync_env import by_sam, delete_subtree, first, tenant_group, tenant_user

pytestmark = pytest.mark.integration

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
PASSWORD = "Delegated-Pw-2026!x"


def delegated_account(domain, admin, ou_dn: str) -> str:
    """A new account with full control of `ou_dn` and what it will hold (an inherited GA ace); its DN."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    dn = f"CN={name},CN=Users,{domain.base_dn}"
    assert admin.add(dn, USER_CLASSES, {"sAMAccountName": name, "unicodePwd": f'"{PASSWORD}"'.encode("utf-16-le"),
                                        "userAccountControl": "512"}), admin.result
    admin.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["objectSid"])
    sid = format_sid(admin.entries[0].objectSid.raw_values[0])
    result = subprocess.run(["samba-tool", "dsacl", "set", "-H", str(domain.dir / "private" / "sam.ldb"),
                             "-s", str(domain.folder.smb_conf), f"--objectdn={ou_dn}", f"--sddl=(A;CI;GA;;;{sid})"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return dn


@contextlib.contextmanager
def delegated_unit(sync_env) -> Iterator[tuple[str, str, Any]]:
    """A unit delegated to a new account, the env's container inside it and the env's domain connection bound as
    that account: (the unit's DN, the account's DN, an administrator's connection). Both removed after."""
    domain = sync_env.domain
    parent = f"OU=delegated-{uuid.uuid4().hex[:8]},{domain.base_dn}"
    admin = domain.ldap_connection()
    account = None
    try:
        assert admin.add(parent, ["organizationalUnit"], {}), admin.result
        account = delegated_account(domain, admin, parent)
        sync_env.container = f"OU=inner,{parent.split(',', 1)[0]}"
        sync_env.set(container=sync_env.container, search_base=sync_env.container)
        connection = domain.connection() | {"login": account, "password": PASSWORD}
        sync_env.monkeypatch.setenv("AIRFLOW_CONN_LDAP_DOMAIN", json.dumps(connection))
        yield parent, account, admin
    finally:
        delete_subtree(admin, parent)
        if account:
            admin.delete(account)
        admin.unbind()


def test_a_hostile_tenant_converges_through_a_delegated_account(sync_env):
    """The whole convergence scenario (local objects, random changes, hand edits made by an administrator, among
    them deletions of synced objects), every sync making both plans."""
    with delegated_unit(sync_env):
        sync_env.set(plan_mode="incremental")
        problems = run_scenario(sync_env, 5150, 60, 12, 25, compare_plans=True, edits=True)
    assert not problems, "\n".join(problems)


def test_a_delegated_account_syncs_and_finds_objects_deleted_by_hand(sync_env):
    domain = sync_env.domain
    with delegated_unit(sync_env) as (parent, account, admin):
        svc = domain.ldap_connection(account, PASSWORD)
        assert not svc.add(f"CN=not-here,CN=Users,{domain.base_dn}", USER_CLASSES, {"sAMAccountName": "not-here"})
        gone = f"CN=gone,{parent}"
        assert admin.add(gone, USER_CLASSES, {"sAMAccountName": f"gone-{uuid.uuid4().hex[:8]}"}), admin.result
        assert admin.delete(gone), admin.result  # a tombstone the administrator sees, the account does not
        assert tombstones_visible(admin, domain.base_dn) and not tombstones_visible(svc, domain.base_dn)
        svc.unbind()

        sync_env.set(plan_mode="incremental")
        ana = tenant_user("ana", "Ana Lima")
        bob = tenant_user("bob", "Bob Stone", manager={"id": ana["id"]})
        team = tenant_group("Team", [ana, bob])
        emu = sync_env.start_tenant({"users": [ana, bob], "groups": [team]})
        created = sync_env.run()
        assert created["apply"]["writes"].get("user.create") == 2, created["apply"]
        idle = sync_env.run()
        assert idle["plan"]["changes"] == 0 and idle["plan"]["plan_mode"]["mode"] == "incremental"
        assert idle["plan"]["plan_mode"]["deletions_seen_by"] == "presence scan"

        owned = by_sam(sync_env.synced_entries(["sAMAccountName"]))
        assert admin.delete(owned["bob"][0]), admin.result  # by hand, as an administrator
        assert admin.delete(owned["Team"][0]), admin.result
        mended = sync_env.run()
        plan = mended["plan"]
        assert plan["plan_mode"]["mode"] == "incremental", plan["plan_mode"]
        assert plan["plan_mode"]["changed_by_reason"].get("deleted_in_domain") == 2, plan["plan_mode"]
        assert plan["counts"].get("user.create") == 1 and plan["counts"].get("group.create") == 1, plan["counts"]
        entries = by_sam(sync_env.synced_entries(["sAMAccountName", "member", "manager"]))
        assert set(entries) >= {"ana", "bob", "Team"}
        assert {first(entries["bob"][1]["manager"])} == {entries["ana"][0]}
        assert set(entries["Team"][1]["member"]) == {entries["ana"][0], entries["bob"][0]}
        assert sync_env.run()["plan"]["changes"] == 0

        emu.admin.delete_user(bob["id"], permanent=True)  # the account's own deletes and disables
        emu.admin.update_user(ana["id"], {"accountEnabled": False})
        written = sync_env.run()["apply"]["writes"]
        assert written.get("user.delete") == 1 and written.get("user.disable") == 1, written
        entries = by_sam(sync_env.synced_entries(["sAMAccountName", "userAccountControl"]))
        assert "bob" not in entries and int(first(entries["ana"][1]["useraccountcontrol"])) & 2
