"""The Airflow side of the stages, so that DAG files only wire: the defaults every task shares (retry
rule, failure alert), the one stage-task factory, and the teardowns every stage DAG ends with.

Every DAG runs its stages the same way (domain_sync.pipeline.run_stage); a DAG may fix params for all
its runs (the drift check's `dry_run`), and each run's folder and state lock name is its run key
(domain_sync.run_keys: the run id for the sync DAG, `<dag id>.<run id>` for the others).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, task

from domain_sync.run_keys import run_key

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


def stage_task(name: str, fixed_params: dict[str, Any] | None = None, *, writes: Asset | None = None,
               **task_kwargs):
    """The task that runs stage `name` (domain_sync.pipeline.STAGES) for this DAG run, with its lineage
    (stage_operator.py). `fixed_params` override the run's params; `writes`: the asset the stage changes,
    whose event is recorded only when the stage wrote (never for a dry run)."""
    from domain_sync.stage_operator import StageOperator

    return StageOperator(task_id=name, stage=name, writes=writes, fixed_params=fixed_params, **task_kwargs)


def apply_tasks(fixed_params: dict[str, Any] | None = None) -> tuple:
    """The apply of the plan spread over mapped tasks (domain_sync.apply.batches), as (first, last) to chain:
    `apply_batches` checks the plan and cuts it into batches; then one task group a phase, in apply order
    (apply/phases.py), whose `batches` lists the phase's batches and whose mapped `write` writes each one, in
    the writers' pool (so the pool caps how many write the domain at once); `apply` merges their results
    into the run's apply results. apply_batches starts only the groups of the phases that hold batches and
    skips the others without starting them (a run with nothing to write starts apply_batches and apply alone).
    A phase starts when every batch of the phases before has finished and none failed (each phase waits for
    all of them: a failure stops every later phase, even past a skipped one)."""
    from airflow.sdk import TaskGroup, TriggerRule

    from domain_sync.apply.phases import BATCH_PARAM, MERGE_PARAM, PHASE_NAMES
    from domain_sync.stage_operator import BranchingStageOperator, StageOperator

    fixed = dict(fixed_params or {})
    groups = {phase: f"apply_{phase}" for phase in PHASE_NAMES}
    prepare = BranchingStageOperator(
        task_id="apply_batches", stage="apply_batches", fixed_params=fixed, follow_key="batches", always=["apply"],
        follow={phase: [f"{group}.batches", f"{group}.write"] for phase, group in groups.items()})
    writes = []
    for phase in PHASE_NAMES:
        with TaskGroup(groups[phase]):
            batches = _phase_batches_task(phase, fixed)
            write = StageOperator.partial(
                task_id="write", stage="apply_batch", pool=APPLY_POOL, trigger_rule=TriggerRule.NONE_FAILED,
                map_index_template="{{ task.fixed_params['" + BATCH_PARAM + "'] }}",
            ).expand(fixed_params=batches)
        prepare >> [batches, write]
        writes >> write
        writes.append(write)
    merge = stage_task("apply", {**fixed, MERGE_PARAM: True}, writes=DOMAIN, pool=APPLY_POOL,
                       trigger_rule=TriggerRule.NONE_FAILED)
    writes >> merge
    return prepare, merge


def _phase_batches_task(phase: str, fixed: dict[str, Any]):
    """The params of each mapped write task of `phase`: the run's fixed params and the batch's id."""

    @task(task_id="batches")
    def batches(run_id=None, dag=None) -> list[dict]:
        from domain_sync.apply.batches import phase_batches
        from domain_sync.apply.phases import BATCH_PARAM
        from domain_sync.config import Settings
        from domain_sync.runs import RunFolder

        run = RunFolder(Settings.from_env().runs_dir, run_key(dag.dag_id, run_id))
        return [{**fixed, BATCH_PARAM: batch} for batch in phase_batches(run, phase)]

    return batches()


def release_state_lock_task():
    """Teardown: frees the state lock if the run still holds it (it ended before commit, which frees it
    otherwise). A teardown runs whatever happened upstream and leaves the run's state alone."""

    @task(task_id="release_state_lock")
    def release_state_lock(run_id=None, dag=None) -> dict:
        from domain_sync.config import Settings
        from domain_sync.state import release_run_lock

        return release_run_lock(Settings.from_env(), run_key(dag.dag_id, run_id))

    return release_state_lock().as_teardown()


def raise_alerts_task():
    """Teardown: the run's alerts (blocked plan, new quarantined objects, expired or unusable links, objects
    failing run after run; domain_sync.run_alerts), raised whatever failed before; it never changes the run's
    state."""

    @task(task_id="raise_alerts")
    def raise_alerts(run_id=None, dag=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("alerts", run_key(dag.dag_id, run_id), {})

    return raise_alerts().as_teardown()


def freshness_task():
    """The watchdog's check: alerts when the sync has not succeeded for too long, or is paused."""

    @task(task_id="check_freshness")
    def check_freshness() -> dict:
        from domain_sync.config import Settings
        from domain_sync.freshness import check_freshness as check

        return check(Settings.from_env())

    return check_freshness()
