"""An object the domain refuses to write, for good, against the real Samba DC: the sync goes on around it,
quarantines it after DOMAIN_SYNC_OBJECT_FAILURE_RUNS runs in a row, and writes it again once its tenant
object changes."""

from __future__ import annotations

import json
import subprocess

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.failing import HELD_KEY, failing_objects
from domain_sync.runs import RunFolder
from tests.fixtures.sync_env import by_sam, first, tenant_group, tenant_user

pytestmark = pytest.mark.integration

DENY_WRITES = "(D;;WP;;;WD)"  # deny Everyone writing any property: an admin protected the object


def deny_writes(domain, dn: str) -> None:
    """Put a deny-write ACE on one object (samba-tool on the DC's own database, as an admin would)."""
    folder = domain.folder
    result = subprocess.run(["samba-tool", "dsacl", "set", f"--objectdn={dn}", f"--sddl={DENY_WRITES}",
                             "-H", str(folder.dir / "private" / "sam.ldb"), "-s", str(folder.smb_conf)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def usn_changed(sync_env, dn: str) -> int:
    conn = sync_env.ldap()
    try:
        conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["uSNChanged"])
        return int(first(conn.response[0]["attributes"]["uSNChanged"]))
    finally:
        conn.unbind()


def test_an_object_the_domain_refuses_is_quarantined_after_n_runs_and_written_again_once_it_changes(sync_env):
    # One failing object of four synced is a quarter of this small domain: allow that share.
    sync_env.set(object_failure_runs=2, max_apply_failure_share=0.5)
    ana, bob, eva = tenant_user("ana", "Ana Lima"), tenant_user("bob", "Bob Stone"), tenant_user("eva", "Eva Berg")
    team = tenant_group("Team", [ana, bob, eva])
    emu = sync_env.start_tenant({"users": [ana, bob, eva], "groups": [team]})
    sync_env.run(run_id="fail-1")
    bob_dn = by_sam(sync_env.synced_entries(["sAMAccountName"]))["bob"][0]
    deny_writes(sync_env.domain, bob_dn)

    # Run 2: bob's change is refused (insufficientAccessRights); the run succeeds and commits.
    emu.admin.update_user(bob["id"], {"jobTitle": "Lead"})
    second = sync_env.run(run_id="fail-2")
    assert [(f["anchor"], f["op"], f["result_code"]) for f in second["apply"]["failed"]] == [
        (bob["id"], "modify", 50)]
    assert second["commit"]["committed"] is True
    entry = failing_objects(sync_env.settings)[bob["id"]]
    assert entry["first_seen"]["run"] == "fail-2" and entry["first_seen"]["at"] and entry["runs"] == 1
    assert "LDAP code 50" in entry["last_error"] and entry["quarantined"] is None

    # Run 3 reads incrementally from run 2's links (only eva's change), and writes bob again from the snapshot.
    emu.admin.update_user(eva["id"], {"jobTitle": "Dev"})
    third = sync_env.run(run_id="fail-3")
    assert third["extract_users"]["full_read"] is False and third["extract_users"]["objects"] == 1
    synced = by_sam(sync_env.synced_entries(["sAMAccountName", "title"]))
    assert first(synced["eva"][1]["title"]) == "Dev"
    assert [f["anchor"] for f in third["apply"]["failed"]] == [bob["id"]] and third["commit"]["committed"] is True
    entry = failing_objects(sync_env.settings)[bob["id"]]
    assert entry["runs"] == 2 and entry["first_seen"]["run"] == "fail-2" and entry["quarantined"]["run"] == "fail-3"
    alert = next(a for a in read_alerts(sync_env.settings) if a["kind"] == "object_failing")
    assert alert["anchor"] == bob["id"] and "quarantined" in alert["message"] and "full resync" in alert["message"]

    # Run 4: bob is held; nothing is written to it, the run is clean.
    before = usn_changed(sync_env, bob_dn)
    fourth = sync_env.run(run_id="fail-4")
    plan = json.loads(RunFolder(sync_env.settings.runs_dir, "fail-4").plan.read_text())
    assert plan[HELD_KEY] == [bob["id"]] and fourth["plan"]["held_failing"]["count"] == 1
    assert not [c for c in plan["changes"] if c["anchor"] == bob["id"]]
    assert fourth["apply"]["failed"] == [] and usn_changed(sync_env, bob_dn) == before
    assert bob["id"] in failing_objects(sync_env.settings)
    team_members = {m.lower() for m in by_sam(sync_env.synced_entries(["sAMAccountName", "member"]))["Team"][1]["member"]}
    assert bob_dn.lower() in team_members

    # Run 5: bob changed in the tenant, so it is released and written again (still refused: quarantined again).
    emu.admin.update_user(bob["id"], {"jobTitle": "Head"})
    fifth = sync_env.run(run_id="fail-5")
    assert fifth["plan"]["held_failing"]["released"] == [bob["id"]]
    assert [f["anchor"] for f in fifth["apply"]["failed"]] == [bob["id"]]
    assert failing_objects(sync_env.settings)[bob["id"]]["quarantined"]["run"] == "fail-5"
