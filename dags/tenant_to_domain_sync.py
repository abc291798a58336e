"""
### Tenant to domain sync

Keeps the Active Directory domain in step with the Microsoft Entra ID tenant, one way.

`extract_users` and `extract_groups` read a Graph delta round each; `transform` folds it into the
tenant snapshot and maps it to directory records; `validate` quarantines bad records (and stops
the run when too many are bad); `plan` diffs the records against the domain into a change set
(the run's `plan/plan.txt` is readable); `apply` writes it over LDAPS (a new user's initial password
goes to the credential sink first); `credentials` sets the password changes of the credential source,
once each and in order per user; `commit` saves the delta
links only after apply succeeded; `report` writes the run summary.

Params: `full_resync` reads everything again (and removes what the tenant no longer has);
`dry_run` stops after the plan; `approve_deletions` lets a plan over the deletion guard through.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, chain, dag

from domain_sync.tasks import APPLY_POOL, DOMAIN, TENANT, default_args, stage_task


@dag(
    dag_id="tenant_to_domain_sync",
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_consecutive_failed_dag_runs=5,
    doc_md=__doc__,
    tags=["domain-sync", "entra-id", "active-directory"],
    default_args=default_args(),
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
    extract = [stage_task("extract_users", inlets=[TENANT]), stage_task("extract_groups", inlets=[TENANT])]
    chain(extract, stage_task("transform"), stage_task("validate"), stage_task("plan"),
          stage_task("apply", writes=DOMAIN, pool=APPLY_POOL),
          # Its own retries: a credential store or DC that is away gets longer (events stay pending meanwhile).
          stage_task("credentials", pool=APPLY_POOL, retries=3, retry_delay=pendulum.duration(minutes=1)),
          stage_task("commit"), stage_task("report"))


tenant_to_domain_sync()
