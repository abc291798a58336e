"""Run folders and state lock names per DAG run: the sync keeps its run ids, other DAGs prefix theirs."""

from __future__ import annotations

from domain_sync import state
from domain_sync.run_keys import run_key


def test_only_the_sync_dag_keeps_bare_run_ids():
    run_id = "scheduled__2026-01-04T03:00:00+00:00"
    assert run_key("tenant_to_domain_sync", run_id) == run_id
    assert run_key("tenant_to_domain_full_resync", run_id) == f"tenant_to_domain_full_resync.{run_id}"
    assert run_key("tenant_to_domain_full_resync", run_id) != run_key("domain_drift_check", run_id)


def test_a_stale_lock_of_another_dags_run_is_looked_up_under_its_airflow_run_id(monkeypatch):
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    asked = []
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "tenant_to_domain_sync")
    monkeypatch.setattr(RuntimeTaskInstance, "get_dagrun_state",
                        staticmethod(lambda dag_id, run_id: asked.append((dag_id, run_id)) or "failed"))
    holder = {"dag_id": "domain_drift_check", "run_id": run_key("domain_drift_check", "manual__1")}
    assert state.airflow_run_finished(holder) == "failed"
    assert asked == [("domain_drift_check", "manual__1")]
