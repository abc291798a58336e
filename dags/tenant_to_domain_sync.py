"""
### Tenant to domain sync

Keeps the Active Directory domain in step with the Microsoft Entra ID tenant, one way.

`extract_users` and `extract_groups` read a Graph delta round each; `transform` folds it into the
tenant snapshot and maps it to directory records; `validate` quarantines bad records (and stops
the run when too many are bad); `plan` diffs the records against the domain into a change set
(the run's `plan/plan.txt` is readable); `apply_batches` cuts it into batches
(`DOMAIN_SYNC_APPLY_BATCH_SIZE` changes), the `apply_<phase>` groups write them over LDAPS phase by
phase (a phase without batches is skipped without starting), the batches of a phase in parallel
mapped tasks (a new user's initial password goes to the credential sink first), and `apply` merges
their results; `credentials` sets the password changes
of the credential source, once each and in order per user; `commit` saves the delta links once
apply went through the plan (an object the domain refuses is written again next run and held after
failing run after run); `report` writes the run summary; `release_state_lock` (a
teardown) frees the state lock of a run that ended before commit; `raise_alerts` (a teardown) raises
the run's alerts (a blocked plan, new quarantined objects, expired or unusable delta links, objects
failing run after run) whatever failed before it.

Every 5 minutes by default (`DOMAIN_SYNC_SYNC_SCHEDULE`), no catchup; the watchdog DAG alerts when it
has not succeeded for `DOMAIN_SYNC_FRESHNESS_MINUTES` (30) or is paused.

Runs never overlap: the first extract takes the state lock, commit frees it; an extract finding it
held by another run waits for it up to `DOMAIN_SYNC_STATE_LOCK_WAIT_SECONDS` (300), then fails with
`StateLocked` and is retried. The lock is what keeps runs apart; `max_active_runs=1` and the
writers' pool (`DOMAIN_SYNC_APPLY_POOL`, opt-in) only cap how many tasks run at once.

Params: `full_resync` reads everything again (and removes what the tenant no longer has);
`dry_run` stops after the plan (a blocked plan reports "blocked" and its digest);
`approve_plan` lets a blocked plan through when it is exactly the plan whose digest it names
(plan/plan.txt of the blocked run).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import chain, dag

from domain_sync.dag_params import approve_plan_param, dry_run_param, full_resync_param
from domain_sync.ops_settings import OpsSettings
from domain_sync.tasks import (
    APPLY_POOL,
    TENANT,
    apply_tasks,
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
    params={"full_resync": full_resync_param(), "dry_run": dry_run_param(), "approve_plan": approve_plan_param()},
)
def tenant_to_domain_sync():
    extract = [stage_task("extract_users", inlets=[TENANT]), stage_task("extract_groups", inlets=[TENANT])]
    chain(extract, stage_task("transform"), stage_task("validate"), stage_task("plan"), *apply_tasks(),
          # Its own retries: a credential store or DC that is away gets longer (events stay pending meanwhile).
          stage_task("credentials", pool=APPLY_POOL, retries=3, retry_delay=pendulum.duration(minutes=1)),
          stage_task("commit", pool=APPLY_POOL),
          stage_task("report"), [release_state_lock_task(), raise_alerts_task()])


tenant_to_domain_sync()
