"""The sync DAG's apply as mapped tasks, run with dag.test() on the demo tenant into the real Samba DC: small
batches make several mapped instances a phase, empty phases are skipped without stopping the run, and a
failed batch stops the later phases and commit while what the earlier batches wrote stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain_sync.apply.phases import PHASE_NAMES
from domain_sync.errors import PermanentError
from domain_sync.runs import RunFolder
from domain_sync.storage import read_json
from tests.fixtures.sync_env import run_dag_test

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEMO_TENANT = Path(__file__).resolve().parents[2] / "emulator" / "tenants" / "demo.json"
DAG_ID = "tenant_to_domain_sync"


def task_states(run_id: str) -> dict[str, list[str]]:
    """{task id: the states of its instances, by map index}."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)
                .filter(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id).all())
    states: dict[str, list[str]] = {}
    for task_id, _, state in sorted(rows, key=lambda r: (r[0], r[1])):
        states.setdefault(task_id, []).append(str(getattr(state, "value", state)))
    return states


def test_small_batches_run_as_mapped_instances_and_empty_phases_do_not_stop_the_run(sync_env, airflow_db):
    tenant = json.loads(DEMO_TENANT.read_text(encoding="utf-8"))
    sync_env.start_tenant(DEMO_TENANT)
    sync_env.set(apply_batch_size=5)
    run = run_dag_test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
    states = task_states(run.run_id)
    folder = RunFolder(sync_env.settings.runs_dir, run.run_id)
    phases = read_json(folder.apply_batches)["phases"]
    assert len(phases["creates"]) >= 3  # the demo's users and groups, 5 a batch
    for phase in PHASE_NAMES:
        write = states[f"apply_{phase}.write"]
        if phases[phase]:
            assert write == ["success"] * len(phases[phase]), (phase, write)
        else:
            assert write == ["skipped"], (phase, write)
    assert states["apply"] == ["success"] and states["commit"] == ["success"]
    applied = read_json(folder.apply_results)
    assert applied["batches"] == sum(len(ids) for ids in phases.values()) and applied["failed"] == []
    users = [e for e in sync_env.synced_entries(["objectClass"]).values()
             if "group" not in [c.lower() for c in e["objectclass"]]]
    assert len(users) == len(tenant["users"])


def test_a_failed_batch_stops_the_later_phases_and_commit_keeping_what_earlier_batches_wrote(
        sync_env, airflow_db, monkeypatch):
    from domain_sync.apply import stage as apply_stage

    sync_env.start_tenant(DEMO_TENANT)
    sync_env.set(apply_batch_size=5)
    real = apply_stage.failed_creates_before

    def refuse_member_adds(run, phase, digest):
        if phase == "member_adds":
            raise PermanentError("member adds refused for this test")
        return real(run, phase, digest)

    monkeypatch.setattr(apply_stage, "failed_creates_before", refuse_member_adds)  # dag.test runs tasks in-process
    run = run_dag_test()
    assert str(run.state) in ("failed", "DagRunState.FAILED"), run.state
    states = task_states(run.run_id)
    assert set(states["apply_member_adds.write"]) == {"failed"}
    later = PHASE_NAMES[PHASE_NAMES.index("member_adds") + 1:]
    for phase in later:
        assert states[f"apply_{phase}.write"] == ["upstream_failed"], (phase, states[f"apply_{phase}.write"])
    assert states["apply_creates.write"] and set(states["apply_creates.write"]) == {"success"}
    assert states["apply"] == ["upstream_failed"] and states["commit"] == ["upstream_failed"]
    assert states["release_state_lock"] == ["success"]  # the teardown frees the lock
    # The creates went through and stay; no membership was written; the delta links were not saved.
    entries = sync_env.synced_entries(["objectClass", "member"])
    assert entries and not any(e.get("member") for e in entries.values())
    folder = RunFolder(sync_env.settings.runs_dir, run.run_id)
    phases = read_json(folder.apply_batches)["phases"]
    assert all(read_json(folder.apply_batch_results(b))["complete"] for b in phases["creates"])
    assert read_json(folder.apply_results) is None
