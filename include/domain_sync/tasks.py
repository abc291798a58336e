"""The Airflow side of the stages, so that DAG files only wire: one task factory and the defaults
every sync task shares (retry rule, failure alert)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, task

# Airflow pool of the writers (apply, which writes the domain, and commit, which writes the state),
# capping them across runs and DAGs; it must exist (`airflow pools set NAME 1 DESCRIPTION`): the
# scheduler never runs a task whose pool is missing. Unset: Airflow's default pool. The state lock
# (domain_sync.state) is what keeps runs apart; the pool is a second line.
APPLY_POOL = os.environ.get("DOMAIN_SYNC_APPLY_POOL") or "default_pool"
TENANT = Asset(name="entra_tenant_directory", uri="x-msgraph://tenant/directory")
DOMAIN = Asset(name="ad_domain_synced_objects", uri="x-ldap://domain/synced-objects")


def default_args() -> dict:
    from domain_sync.notifiers import TaskFailureAlert
    from domain_sync.pipeline import retry_policy

    return {
        "owner": "identity-ops",
        "retries": 2,
        "retry_delay": pendulum.duration(seconds=30),
        "retry_exponential_backoff": 2.0,
        "retry_policy": retry_policy(),
        "on_failure_callback": [TaskFailureAlert()],
    }


def stage_task(name: str, writes: Asset | None = None, **task_kwargs):
    """The task that runs stage `name` (domain_sync.pipeline.STAGES), with its lineage (stage_operator.py).
    `writes`: the asset the stage changes; an event is recorded for it only when the stage wrote (never for
    a dry run)."""
    from domain_sync.stage_operator import StageOperator

    return StageOperator(task_id=name, stage=name, writes=writes, **task_kwargs)


def release_state_lock_task():
    """The run's teardown: frees the state lock if the run still holds it (it ended before commit, which
    frees it otherwise). A teardown runs whatever happened upstream and leaves the run's state alone."""

    @task(task_id="release_state_lock")
    def release_state_lock(run_id=None) -> dict:
        from domain_sync.config import Settings
        from domain_sync.state import release_run_lock

        return release_run_lock(Settings.from_env(), run_id)

    return release_state_lock().as_teardown()
