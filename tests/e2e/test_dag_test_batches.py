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


def task_rows(run_id: str) -> list[tuple[str, int, str, bool]]:
    """(task id, map index, state, whether it started) of every task instance of the run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        # A task that ran reported its process (ti_run); a skipped task gets dates but never a pid.
        rows = (session.query(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state, TaskInstance.pid)
                .filter(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id).all())
    return sorted((t, i, str(getattr(s, "value", s)), pid is not None) for t, i, s, pid in rows)


def task_states(run_id: str) -> dict[str, list[str]]:
    """{task id: the states of its instances, by map index}."""
    states: dict[str, list[str]] = {}
    for task_id, _, state, _ in task_rows(run_id):
        states.setdefault(task_id, []).append(state)
    return states


def started_apply_tasks(run_id: str) -> set[str]:
    """The apply's tasks of the run that started (skipped without starting: none)."""
    return {t for t, _, _, started in task_rows(run_id) if started and t.startswith("apply")}


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
        write, batches = states[f"apply_{phase}.write"], states[f"apply_{phase}.batches"]
        if phases[phase]:
            assert write == ["success"] * len(phases[phase]) and batches == ["success"], (phase, write)
        else:
            assert write == batches == ["skipped"], (phase, write, batches)
    assert states["apply"] == ["success"] and states["commit"] == ["success"]
    # apply_batches skipped the empty phases without starting them.
    busy = [p for p in PHASE_NAMES if phases[p]]
    assert started_apply_tasks(run.run_id) == {"apply_batches", "apply",
                                               *(f"apply_{p}.{t}" for p in busy for t in ("batches", "write"))}
    applied = read_json(folder.apply_results)
    assert applied["batches"] == sum(len(ids) for ids in phases.values()) and applied["failed"] == []
    users = [e for e in sync_env.synced_entries(["objectClass"]).values()
             if "group" not in [c.lower() for c in e["objectclass"]]]
    assert len(users) == len(tenant["users"])

    # A run with nothing to write starts apply_batches and apply alone; every phase is skipped, the run succeeds.
    idle = run_dag_test()
    assert str(idle.state) in ("success", "DagRunState.SUCCESS"), idle.state
    assert read_json(RunFolder(sync_env.settings.runs_dir, idle.run_id).apply_results)["total_writes"] == 0
    assert started_apply_tasks(idle.run_id) == {"apply_batches", "apply"}
    idle_states = task_states(idle.run_id)
    assert all(idle_states[f"apply_{p}.{t}"] == ["skipped"] for p in PHASE_NAMES for t in ("batches", "write"))
    assert idle_states["commit"] == ["success"]


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
    phases = read_json(RunFolder(sync_env.settings.runs_dir, run.run_id).apply_batches)["phases"]
    for phase in later:  # the ones with batches never start; the empty ones apply_batches skipped
        expected = ["upstream_failed"] if phases[phase] else ["skipped"]
        assert states[f"apply_{phase}.write"] == expected, (phase, states[f"apply_{phase}.write"])
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
