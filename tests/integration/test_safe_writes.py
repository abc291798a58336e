"""Safe writes against the real Samba DC: approval by plan digest, member removals in the guard, lost
state, and runs that never work on the state at once."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.errors import PermanentError
from domain_sync.pipeline import run_stage
from domain_sync.runs import RunFolder
from domain_sync.state import StateChanged, StateLocked, StateLost, StateStore
from tests.fixtures.sync_env import STAGES, by_sam, first, tenant_group, tenant_user

pytestmark = pytest.mark.integration

EXTRACT = ["extract_users", "extract_groups"]


def plan_of(sync_env, run_id: str) -> dict:
    return json.loads(RunFolder(sync_env.settings.runs_dir, run_id).plan.read_text())


def alerts_of(sync_env, kind: str) -> list[dict]:
    return [a for a in read_alerts(sync_env.settings) if a["kind"] == kind]


def synced_tenant(sync_env, n_users: int = 6, group: str = "Crew"):
    users = [tenant_user(f"sw{n}", f"Safe {n}") for n in range(n_users)]
    emu = sync_env.start_tenant({"users": users, "groups": [tenant_group(group, users)]})
    sync_env.run(run_id="initial")
    return emu, users


def test_an_approved_digest_applies_its_plan_and_more_deletions_are_blocked_again(sync_env):
    sync_env.set(max_deletes=2)
    emu, users = synced_tenant(sync_env)
    for user in users[:3]:
        emu.admin.delete_user(user["id"], permanent=True)
    usn = sync_env.highest_usn()
    with pytest.raises(PermanentError, match="stopped before any write"):
        sync_env.run(run_id="blocked")
    read = plan_of(sync_env, "blocked")["digest"]

    # The tenant deletes one more before the operator's approval arrives: that approval does not cover it.
    emu.admin.delete_user(users[3]["id"], permanent=True)
    with pytest.raises(PermanentError, match="approved another plan") as caught:
        sync_env.run(run_id="stale-approval", approve_plan=read)
    assert sync_env.highest_usn() == usn, "a plan with more deletions than the approved one wrote"
    now = plan_of(sync_env, "stale-approval")
    assert now["digest"] != read and now["status"] == "blocked" and now["counts"]["user.delete"] == 4
    assert f"approve_plan={now['digest']}" in str(caught.value)

    applied = sync_env.run(run_id="approved", approve_plan=now["digest"])
    assert applied["plan"]["status"] == "approved" and applied["apply"]["writes"]["user.delete"] == 4
    assert set(by_sam(sync_env.synced_entries(["sAMAccountName"]))) == {"sw4", "sw5", "Crew"}
    # The approval was for that plan only: the next run has nothing over a guard and goes on by itself.
    assert sync_env.run(run_id="after")["plan"]["status"] == "clear"


def test_a_dry_run_of_a_blocked_plan_succeeds_reporting_blocked_and_its_digest(sync_env):
    sync_env.set(max_deletes=1)
    emu, users = synced_tenant(sync_env, n_users=4)
    for user in users[:2]:
        emu.admin.delete_user(user["id"], permanent=True)
    usn = sync_env.highest_usn()
    dry = sync_env.run(run_id="look", dry_run=True)
    assert dry["plan"]["status"] == "blocked" and len(dry["plan"]["digest"]) == 64
    assert dry["apply"]["plan_status"] == "blocked" and dry["apply"]["digest"] == dry["plan"]["digest"]
    assert dry["commit"]["committed"] is False
    assert sync_env.highest_usn() == usn
    summary = RunFolder(sync_env.settings.runs_dir, "look").summary()
    assert summary["plan"]["status"] == "blocked" and summary["plan"]["digest"] == dry["plan"]["digest"]
    assert StateStore(sync_env.settings.state_dir).lock_holder() is None

    # The digest the dry run showed approves the next run's plan (the same changes are read again).
    applied = sync_env.run(run_id="go", approve_plan=dry["plan"]["digest"])
    assert applied["apply"]["writes"]["user.delete"] == 2


def test_removing_most_of_a_groups_members_is_blocked_until_approved(sync_env):
    sync_env.set(member_removal_share_min_members=5, max_member_removal_share=0.5)
    emu, users = synced_tenant(sync_env, n_users=8)
    group_id = next(g for g in emu.admin.export()["groups"] if g["displayName"] == "Crew")["id"]
    for user in users[:5]:
        emu.admin.remove_member(group_id, user["id"])  # the users stay; only the memberships go
    usn = sync_env.highest_usn()
    with pytest.raises(PermanentError, match=f"5 of the 8 members of group {group_id}"):
        sync_env.run(run_id="emptied")
    assert sync_env.highest_usn() == usn
    applied = sync_env.run(run_id="emptied-ok", approve_plan=plan_of(sync_env, "emptied")["digest"])
    assert applied["plan"]["counts"] == {"group.remove_members": 5}
    crew = by_sam(sync_env.synced_entries(["sAMAccountName", "member"]))["Crew"][1]
    assert len(crew["member"]) == 3


def test_saved_links_whose_snapshot_is_gone_stop_the_run_before_any_write(sync_env):
    emu, users = synced_tenant(sync_env, n_users=3)
    emu.admin.update_user(users[0]["id"], {"jobTitle": "Changed"})
    state = StateStore(sync_env.settings.state_dir)
    (state.current() / "snapshot_users.parquet").unlink()
    usn = sync_env.highest_usn()
    with pytest.raises(StateLost, match="snapshot_users.parquet missing"):
        sync_env.run(run_id="lost")
    assert sync_env.highest_usn() == usn
    assert alerts_of(sync_env, "state_lost")[0]["run_id"] == "lost"
    assert not RunFolder(sync_env.settings.runs_dir, "lost").staged("users").exists()

    # The way back: a full resync, whose plan needs approval like any lost-state reconcile.
    with pytest.raises(PermanentError, match="lost state, this run is a full reconcile"):
        sync_env.run(run_id="resync", full_resync=True)
    assert sync_env.highest_usn() == usn
    digest = plan_of(sync_env, "resync")["digest"]
    done = sync_env.run(run_id="resync-ok", full_resync=True, approve_plan=digest)
    assert done["commit"]["committed"] and state.has_snapshot()
    assert first(by_sam(sync_env.synced_entries(["sAMAccountName", "title"]))["sw0"][1]["title"]) == "Changed"


def test_no_committed_state_while_the_domain_holds_synced_objects_needs_approval(sync_env):
    emu, users = synced_tenant(sync_env, n_users=3)
    shutil.rmtree(sync_env.settings.state_dir)  # a new data folder, a lost volume
    emu.admin.delete_user(users[0]["id"], permanent=True)
    usn = sync_env.highest_usn()
    with pytest.raises(PermanentError, match="nothing committed.*4 synced objects"):
        sync_env.run(run_id="empty-state")
    assert sync_env.highest_usn() == usn
    assert [a["run_id"] for a in alerts_of(sync_env, "state_lost")] == ["empty-state"]
    result = sync_env.run(run_id="empty-state-ok", approve_plan=plan_of(sync_env, "empty-state")["digest"])
    assert result["apply"]["writes"]["user.delete"] == 1
    assert sync_env.run(run_id="next")["plan"]["status"] == "clear"


def test_two_runs_never_work_on_the_state_at_once(sync_env):
    emu, users = synced_tenant(sync_env, n_users=3)
    emu.admin.update_user(users[0]["id"], {"jobTitle": "First"})
    for stage in EXTRACT:
        run_stage(stage, "run-a", {})
    usn = sync_env.highest_usn()
    sync_env.set(state_lock_wait_seconds=0)  # refused at once instead of waiting for run-a
    for stage in EXTRACT:  # a backfill or a triggered run beside it
        with pytest.raises(StateLocked, match="locked by run 'run-a'"):
            run_stage(stage, "run-b", {})
    b = RunFolder(sync_env.settings.runs_dir, "run-b")
    assert not b.staged("users").exists() and not b.state_read.exists()
    assert sync_env.highest_usn() == usn

    sync_env.run(stages=STAGES[2:], run_id="run-a")
    emu.admin.update_user(users[1]["id"], {"jobTitle": "Second"})
    after = sync_env.run(run_id="run-b")  # the refused run, retried: it reads on from run-a's state
    assert after["extract_users"]["full_read"] is False and after["extract_users"]["objects"] == 1
    titles = {sam: first(e.get("title")) for sam, (_, e) in by_sam(sync_env.synced_entries(["sAMAccountName",
                                                                                           "title"])).items()}
    assert titles["sw0"] == "First" and titles["sw1"] == "Second"


def test_a_run_that_lost_its_lock_neither_folds_nor_commits_on_the_newer_state(sync_env):
    sync_env.set(state_lock_stale_hours=0.0003)  # about a second
    emu, users = synced_tenant(sync_env, n_users=3)
    state = StateStore(sync_env.settings.state_dir)

    # Run A stalls after extract; its lock goes stale and run B takes it over and commits.
    for stage in EXTRACT:
        run_stage(stage, "stalled", {})
    time.sleep(1.5)
    sync_env.run(run_id="taker")
    assert alerts_of(sync_env, "state_lock_recovered")[0]["previous_holder"] == "stalled"
    with pytest.raises(StateChanged, match="another run committed since"):
        run_stage("transform", "stalled", {})

    # Run C stalls after apply: the version it read is gone by the time it commits.
    emu.admin.update_user(users[0]["id"], {"jobTitle": "Late"})
    for stage in STAGES[:6]:
        run_stage(stage, "late", {})
    time.sleep(1.5)
    newer = sync_env.run(run_id="overtaker")["commit"]["version"]
    with pytest.raises(StateChanged, match="another run committed since"):
        run_stage("commit", "late", {})
    assert state.version() == newer


def test_a_deleted_tenant_user_is_removed_from_the_domain_with_the_objects_below_it(sync_env):
    """AD lets other objects live below a user (class stores, FRS subscriptions, devices): the delete
    takes the whole subtree (tree-delete control), where a plain delete is refused (66, notAllowedOnNonLeaf)."""
    emu, users = synced_tenant(sync_env, n_users=3)
    user_dn = by_sam(sync_env.synced_entries(["sAMAccountName"]))["sw0"][0]
    child_dn = f"CN=Apps,{user_dn}"
    conn = sync_env.ldap()
    try:
        # classStore names user among its possible superiors (AD DS schema, Windows Server 2012 R2)
        assert conn.add(child_dn, ["classStore"]), conn.result
        assert not conn.delete(user_dn) and conn.result["result"] == 66, "the user must be a non-leaf"
    finally:
        conn.unbind()
    emu.admin.delete_user(users[0]["id"], permanent=True)
    result = sync_env.run(run_id="tree-delete")
    assert result["apply"]["writes"]["user.delete"] == 1 and result["apply"]["statuses"].get("failed") is None
    assert "sw0" not in by_sam(sync_env.synced_entries(["sAMAccountName"]))
    conn = sync_env.ldap()
    try:
        for dn in (child_dn, user_dn):
            conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["cn"])
            assert conn.result["result"] == 32, f"{dn} is still there"
    finally:
        conn.unbind()
