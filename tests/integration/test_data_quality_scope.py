"""Scope against Samba: only members of chosen groups (nested groups followed) are synced; a scope change
disables the users that left (never deletes them), deletes the groups that left, and is previewed."""

from __future__ import annotations

import json

import pytest

from domain_sync.errors import PermanentError
from domain_sync.runs import RunFolder
from tests.fixtures.sync_env import tenant_group, tenant_user
from tests.integration.test_data_quality_mapping import by_sam, value

pytestmark = pytest.mark.integration

DISABLED = 0x2


def disabled(entry) -> bool:
    return bool(int(value(entry, "userAccountControl")) & DISABLED)


def test_scope_change_disables_the_users_that_left_and_enables_those_back(sync_env):
    ana, bob, cy, dan, eve = (tenant_user(n) for n in ("ana", "bob", "cy", "dan", "eve"))
    # Eng holds ana and the nested Platform (bob), which holds Eng again: a cycle. Sales holds cy;
    # dan is in Eng too but disabled in the tenant; eve is in no group.
    dan["accountEnabled"] = False
    platform = tenant_group("Platform", [bob])
    eng = tenant_group("Eng", [ana, dan, platform])
    platform["members"].append({"@odata.type": "#microsoft.graph.group", "id": eng["id"]})
    sales = tenant_group("Sales", [cy])
    emu = sync_env.start_tenant({"users": [ana, bob, cy, dan, eve], "groups": [eng, platform, sales]})
    # Initial passwords: an account without one is created disabled and stays so, which is not what this is about.
    sync_env.set(scope_groups="eng")  # a display name, without case

    first = sync_env.run()
    entries = by_sam(sync_env.synced_entries())
    assert set(entries) == {"ana", "bob", "dan", "Eng", "Platform"}
    assert not disabled(entries["ana"]) and not disabled(entries["bob"]) and disabled(entries["dan"])
    assert first["transform"]["scope"]["users_entering"] == 3 and first["transform"]["scope"]["groups_in_scope"] == 2

    sync_env.set(scope_groups=sales["id"])
    second = sync_env.run()
    scope = second["transform"]["scope"]
    assert (scope["users_entering"], scope["users_leaving"], scope["groups_entering"], scope["groups_leaving"]) == (
        1, 3, 1, 2)
    entries = by_sam(sync_env.synced_entries())
    assert set(entries) == {"ana", "bob", "dan", "cy", "Sales"}, "users out of scope stay; groups go"
    assert disabled(entries["ana"]) and disabled(entries["bob"]) and not disabled(entries["cy"])
    assert second["plan"]["counts"]["user.disable"] == 2 and "user.delete" not in second["plan"]["counts"]

    # A user joining a group in scope comes in; scope back to Eng re-enables the users that return.
    emu.admin.add_member(sales["id"], eve["id"])
    joined = sync_env.run()
    assert not disabled(by_sam(sync_env.synced_entries())["eve"])
    assert joined["plan"]["drift_corrected"] == {}, "a user entering scope came from the tenant, not from drift"
    sync_env.set(scope_groups="Eng")
    sync_env.run()
    entries = by_sam(sync_env.synced_entries())
    assert not disabled(entries["ana"]) and not disabled(entries["bob"]) and disabled(entries["dan"])
    assert disabled(entries["cy"]) and disabled(entries["eve"])


def test_a_scope_group_the_tenant_does_not_have_stops_before_any_write(sync_env):
    from domain_sync.errors import PermanentError

    ana = tenant_user("ana")
    sync_env.start_tenant({"users": [ana], "groups": [tenant_group("Eng", [ana])]})
    sync_env.set(scope_groups="Eng,Ghosts")
    with pytest.raises(PermanentError, match="'Ghosts' is neither the id nor the display name of a group"):
        sync_env.run()
    assert sync_env.synced_entries() == {}


def test_with_the_state_lost_users_out_of_scope_are_disabled_not_deleted(sync_env):
    import shutil

    ana, bob = tenant_user("ana"), tenant_user("bob")
    sync_env.start_tenant({"users": [ana, bob], "groups": [tenant_group("Eng", [ana]), tenant_group("Ops", [bob])]})
    sync_env.run()  # everyone in scope
    assert {"ana", "bob"} <= set(by_sam(sync_env.synced_entries()))

    shutil.rmtree(sync_env.settings.state_dir)  # the committed state is gone (new Airflow home, lost volume)
    sync_env.set(scope_groups="Eng")
    # Lost state with synced objects in the domain: the full reconcile waits for approval of its plan.
    with pytest.raises(PermanentError, match="lost state"):
        sync_env.run(run_id="lost")
    digest = json.loads(RunFolder(sync_env.settings.runs_dir, "lost").plan.read_text())["digest"]
    result = sync_env.run(approve_plan=digest)
    entries = by_sam(sync_env.synced_entries())
    assert "bob" in entries and disabled(entries["bob"]) and not disabled(entries["ana"])
    assert "user.delete" not in result["plan"]["counts"]


def test_a_scoped_full_resync_without_tenant_changes_succeeds_and_writes_nothing(sync_env):
    """The broken-read check compares the scoped full read with the scoped snapshot: like with like."""
    users = [tenant_user(n) for n in ("ana", "bob", "cy", "dan", "eve", "fay")]
    eng = tenant_group("Eng", users[:2])
    sync_env.start_tenant({"users": users, "groups": [eng, tenant_group("Sales", users[2:])]})
    sync_env.set(scope_groups="Eng")
    sync_env.run()
    usn = sync_env.highest_usn()
    again = sync_env.run(full_resync=True)
    assert again["extract_users"]["full_read"] and again["plan"]["changes"] == 0, again["plan"]
    assert sync_env.highest_usn() == usn, "the scoped full resync wrote to the domain"
