"""
### Tenant to domain sync

Keeps the Active Directory domain in step with the Microsoft Entra ID tenant, one way.

`extract_users` and `extract_groups` read a Graph delta round each; `transform` folds it into the
tenant snapshot and maps it to directory records; `validate` quarantines bad records (and stops
the run when too many are bad); `plan` diffs the records against the domain into a change set
(the run's `plan/plan.txt` is readable); `apply` writes it over LDAPS (a new user's initial password
goes to the credential sink first); `credentials` sets the password changes of the credential source,
once each and in order per user; `commit` saves the delta
links once apply went through the plan (an object the domain refuses is written again next run and
held after failing run after run); `report` writes the run summary; `release_state_lock` (a
teardown) frees the state lock of a run that ended before commit; `raise_alerts` (a teardown) raises
the run's alerts (a blocked plan, new quarantined objects, expired or unusable delta links, objects
failing run after run) whatever failed before it.

Every 5 minutes by default (`DOMAIN_SYNC_SYNC_SCHEDULE`), no catchup; the watchdog DAG alerts when it
has not succeeded for `DOMAIN_SYNC_FRESHNESS_MINUTES` (30) or is paused.

Runs never overlap: the first extract takes the state lock, commit frees it; an extract finding it
held by another run fails and is retried. `max_active_runs=1` and the writers' pool
(`DOMAIN_SYNC_APPLY_POOL`) keep runs of one DAG apart as well.

Params: `full_resync` reads everything again (and removes what the tenant no longer has);
`dry_run` stops after the plan (a blocked plan reports "blocked" and its digest);
`approve_plan` lets a blocked plan through when it is exactly the plan whose digest it names
(plan/plan.txt of the blocked run).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, chain, dag

from domain_sync.ops_settings import OpsSettings
from domain_sync.tasks import (
    APPLY_POOL,
    DOMAIN,
    TENANT,
    default_args,
    raise_alerts_task,
    release_state_lock_task,
    stage_task,
)


@dag(
    dag_id="tenant_to_domain_sync",
    schedule=OpsSettings.from_env().sync_schedule,
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
        "approve_plan": Param("", type="string", pattern="^$|^[0-9a-f]{64}$", title="Approve plan",
                              description="The digest of a blocked plan (in the blocked run's plan/plan.txt, its "
                                          "error and its summary) to apply it. Only a plan with exactly those "
                                          "changes passes: if the tenant changed since, the run is blocked again "
                                          "with a new digest."),
    },
)
def tenant_to_domain_sync():
    extract = [stage_task("extract_users", inlets=[TENANT]), stage_task("extract_groups", inlets=[TENANT])]
    chain(extract, stage_task("transform"), stage_task("validate"), stage_task("plan"),
          stage_task("apply", writes=DOMAIN, pool=APPLY_POOL),
          # Its own retries: a credential store or DC that is away gets longer (events stay pending meanwhile).
          stage_task("credentials", pool=APPLY_POOL, retries=3, retry_delay=pendulum.duration(minutes=1)),
          stage_task("commit", pool=APPLY_POOL),
          stage_task("report"), [release_state_lock_task(), raise_alerts_task()])


tenant_to_domain_sync()
