"""The whole pipeline with its data folder on Azure Blob Storage (Azurite, abfs://): run folders, the committed
state, the lock and the alerting files are objects in a container, nothing is on the local disk, and the
stages run against the emulator and the real Samba DC as the DAG runs them."""

from __future__ import annotations

import pytest

from domain_sync.runs import RunFolder
from domain_sync.state import StateStore
from domain_sync.storage import JsonLog, children, is_local, read_json, read_parquet
from tests.fixtures.sync_env import STAGES, by_sam, first, tenant_group, tenant_user

pytestmark = [pytest.mark.integration, pytest.mark.azurite]


@pytest.fixture
def abfs_env(sync_env, abfs_data, tmp_path):
    sync_env.set(data_dir=abfs_data, data_conn_id="data_store")
    yield sync_env
    assert not (tmp_path / "data").exists(), "the sync wrote to the local disk"


def tenant():
    ana = tenant_user("ana", "Ana Lima", city="Oslo", jobTitle="Engineer")
    bob = tenant_user("bob", "Bob Stone")
    team = tenant_group("Engineers", [ana, bob])
    return {"users": [ana, bob], "groups": [team]}, {"ana": ana, "bob": bob, "team": team}


def pointer_entries(env) -> int:
    """How many commits moved the state pointer (the pointer log's sequence number)."""
    return JsonLog(env.settings.state_dir / "pointer").latest()[0]


def test_a_full_sync_keeps_its_run_folder_and_state_on_object_storage(abfs_env):
    data, o = tenant()
    abfs_env.start_tenant(data)
    result = abfs_env.run(run_id="full")
    assert result["apply"]["statuses"] == {"applied": result["apply"]["planned"]}
    entries = by_sam(abfs_env.synced_entries())
    assert set(entries) == {"ana", "bob", "Engineers"}
    assert first(entries["ana"][1]["l"]) == "Oslo"
    assert sorted(m.lower() for m in entries["Engineers"][1]["member"]) == sorted(
        [entries["ana"][0].lower(), entries["bob"][0].lower()])

    settings = abfs_env.settings
    assert not is_local(settings.state_dir) and settings.state_dir.protocol == "abfs"
    state = StateStore(settings.state_dir)
    assert result["commit"]["committed"] and state.version() == result["commit"]["version"]
    assert pointer_entries(abfs_env) == 1 and state.lock_holder() is None
    assert set(read_parquet(state.snapshot("users"))["id"]) == {o["ana"]["id"], o["bob"]["id"]}
    assert set(state.delta_links()) == {"users", "groups"}
    run = RunFolder(settings.runs_dir, "full")
    summary = run.summary()
    assert {"extract_users", "extract_groups", "transform", "plan", "apply", "commit", "report"} <= set(summary)
    assert summary["run_id"] == "full" and read_json(run.plan)["status"] == "clear"
    assert {p.name for p in children(run.path / "extract")} >= {"users.parquet", "delta_link_users.json"}


def test_an_incremental_sync_reads_the_saved_links_from_object_storage(abfs_env):
    data, o = tenant()
    emu = abfs_env.start_tenant(data)
    abfs_env.run(run_id="first")
    carl = tenant_user("carl", "Carl Berg")
    emu.admin.create_user(carl)
    emu.admin.update_user(o["ana"]["id"], {"city": "Rome"})
    emu.admin.add_member(o["team"]["id"], carl["id"])
    result = abfs_env.run(run_id="second")
    assert result["extract_users"]["full_read"] is False and result["extract_groups"]["full_read"] is False
    assert result["plan"]["counts"] == {"user.create": 1, "user.modify": 1, "group.add_members": 1}
    entries = by_sam(abfs_env.synced_entries())
    assert "carl" in entries and first(entries["ana"][1]["l"]) == "Rome"
    assert entries["carl"][0].lower() in [m.lower() for m in entries["Engineers"][1]["member"]]
    assert pointer_entries(abfs_env) == 2
    assert abfs_env.run(run_id="third")["plan"]["changes"] == 0


def test_a_crash_between_apply_and_commit_ends_in_the_planned_state_with_one_commit(abfs_env):
    data, o = tenant()
    emu = abfs_env.start_tenant(data)
    first_run = abfs_env.run(run_id="base")
    committed = first_run["commit"]["version"]
    emu.admin.update_user(o["bob"]["id"], {"jobTitle": "Pilot"})
    emu.admin.delete_user(o["ana"]["id"], permanent=True)
    # The worker dies after apply wrote: no commit (the DAG's teardown frees the lock, as env.run does).
    crashed = abfs_env.run(STAGES[:STAGES.index("apply") + 1], run_id="crashed")
    assert crashed["apply"]["total_writes"] > 0
    state = StateStore(abfs_env.settings.state_dir)
    assert state.version() == committed and pointer_entries(abfs_env) == 1
    # The next run reads the same changes again; the domain holds them already: nothing to write, one commit.
    rerun = abfs_env.run(run_id="after-crash")
    assert rerun["apply"]["total_writes"] == 0 and rerun["plan"]["changes"] == 0
    assert rerun["commit"]["committed"] and rerun["commit"]["previous_version"] == committed
    assert pointer_entries(abfs_env) == 2 and state.version() == rerun["commit"]["version"]
    entries = by_sam(abfs_env.synced_entries())
    assert "ana" not in entries and first(entries["bob"][1]["title"]) == "Pilot"
    assert set(read_parquet(state.snapshot("users"))["id"]) == {o["bob"]["id"]}
    assert abfs_env.run(run_id="quiet")["plan"]["changes"] == 0
