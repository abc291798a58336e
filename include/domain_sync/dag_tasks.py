"""Tasks of the operations DAGs (full resync, drift check, on-demand sync, watchdog) and the alert
teardown every sync DAG ends with, so that those DAG files only wire.

Their stages run exactly as in the sync DAG (domain_sync.pipeline.run_stage), with two differences:
a DAG may fix params for all its runs (the drift check's `dry_run`), and the runs of DAGs other than
the sync DAG have run folders (and state lock names) of their own (domain_sync.run_keys).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, task

from domain_sync.run_keys import run_key


def ops_stage_task(name: str, fixed_params: dict[str, Any] | None = None, writes: Asset | None = None,
                   **task_kwargs):
    """The task that runs stage `name` for this DAG run; `fixed_params` override the run's params."""
    from domain_sync.stage_operator import StageOperator

    return StageOperator(task_id=name, stage=name, writes=writes, fixed_params=fixed_params, keyed=True,
                         **task_kwargs)


def raise_alerts_task():
    """Teardown: the run's alerts (blocked plan, new quarantined objects, expired or unusable links, objects
    failing run after run; domain_sync.run_alerts), raised whatever failed before; it never changes the run's
    state."""

    @task(task_id="raise_alerts")
    def raise_alerts(run_id=None, dag=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("alerts", run_key(dag.dag_id, run_id), {})

    return raise_alerts().as_teardown()


def release_lock_task():
    """Teardown: frees the state lock if this run still holds it (as tasks.release_state_lock_task, with the
    run's key)."""

    @task(task_id="release_state_lock")
    def release_state_lock(run_id=None, dag=None) -> dict:
        from domain_sync.config import Settings
        from domain_sync.state import release_run_lock

        return release_run_lock(Settings.from_env(), run_key(dag.dag_id, run_id))

    return release_state_lock().as_teardown()


def freshness_task():
    @task(task_id="check_freshness")
    def check_freshness() -> dict:
        from domain_sync.config import Settings
        from domain_sync.freshness import check_freshness as check

        return check(Settings.from_env())

    return check_freshness()
