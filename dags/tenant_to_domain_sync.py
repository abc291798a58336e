"""
### Tenant to domain sync

Keeps the Active Directory domain in step with the Microsoft Entra ID tenant, one way.

`extract_users` and `extract_groups` read a Graph delta round each; `transform` folds it into the
tenant snapshot and maps it to directory records; `validate` quarantines bad records (and stops
the run when too many are bad); `plan` diffs the records against the domain into a change set
(the run's `plan/plan.txt` is readable); `apply` writes it over LDAPS; `commit` saves the delta
links only after apply succeeded; `report` writes the run summary.

Params: `full_resync` reads everything again (and removes what the tenant no longer has);
`dry_run` stops after the plan; `approve_deletions` lets a plan over the deletion guard through.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, Param, dag, task

# Airflow pool of the apply task, capping writers to the domain across runs and DAGs; it must
# exist (`airflow pools set NAME SLOTS DESCRIPTION`): the scheduler never runs a task whose pool is
# missing. Unset: Airflow's default pool.
APPLY_POOL = os.environ.get("DOMAIN_SYNC_APPLY_POOL") or "default_pool"
TENANT = Asset(name="entra_tenant_directory", uri="x-msgraph://tenant/directory")
DOMAIN = Asset(name="ad_domain_synced_objects", uri="x-ldap://domain/synced-objects")
NO_RETRY = "domain_sync_errors_without_retry"


def _alert_on_failure(context) -> None:
    from domain_sync.alerts import raise_alert
    from domain_sync.config import Settings

    ti = context["ti"]
    raise_alert(Settings.from_env(), "task_failed", f"task {ti.task_id} of run {context['run_id']} failed: "
                f"{context.get('exception')}", dag_id=ti.dag_id, task_id=ti.task_id, run_id=context["run_id"])


@dag(
    dag_id="tenant_to_domain_sync",
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_consecutive_failed_dag_runs=5,
    doc_md=__doc__,
    tags=["domain-sync", "entra-id", "active-directory"],
    default_args={
        "owner": "identity-ops",
        "retries": 2,
        "retry_delay": pendulum.duration(seconds=30),
        "retry_exponential_backoff": 2.0,
        "on_failure_callback": _alert_on_failure,
    },
    params={
        "full_resync": Param(False, type="boolean", title="Full resync",
                             description="Read every tenant object again instead of the changes since the last run."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Stop after the plan: write nothing to the domain, save no delta link."),
        "approve_deletions": Param(False, type="boolean", title="Approve deletions",
                                   description="Let a plan that deletes or disables more than the guard allows run."),
    },
)
def tenant_to_domain_sync():
    @task(inlets=[TENANT])
    def extract_users(params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("extract_users", run_id, params)

    @task(inlets=[TENANT])
    def extract_groups(params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("extract_groups", run_id, params)

    @task
    def transform(users: dict, groups: dict, params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("transform", run_id, params)

    @task
    def validate(transformed: dict, params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("validate", run_id, params)

    @task
    def plan(validated: dict, params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("plan", run_id, params)

    @task(outlets=[DOMAIN], pool=APPLY_POOL)
    def apply(planned: dict, params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("apply", run_id, params)

    @task
    def commit(applied: dict, params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("commit", run_id, params)

    @task
    def report(committed: dict, params=None, run_id=None) -> dict:
        from domain_sync.pipeline import run_stage

        return run_stage("report", run_id, params)

    users = extract_users()
    groups = extract_groups()
    report(commit(apply(plan(validate(transform(users, groups))))))


tenant_to_domain_sync()
