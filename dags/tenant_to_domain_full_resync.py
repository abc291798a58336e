"""
### Tenant to domain: full resync

Reads the whole tenant again (no delta link) and reconciles the whole domain container with it:
what the tenant no longer has is deleted, what was changed by hand is set back. The same stages as
`tenant_to_domain_sync`, each run converging on its own: trigger it by hand, or backfill it (one run
per date, each a full reconcile):

    airflow backfill create --dag-id tenant_to_domain_full_resync --from-date D1 --to-date D2 --max-active-runs 1

Airflow backfills only DAGs with a periodic schedule, so it also runs weekly
(`DOMAIN_SYNC_FULL_RESYNC_SCHEDULE`, Sundays 03:00 UTC). Runs share the state lock with the sync DAG:
never two runs on the state at once.

Params: `dry_run` stops after the plan; `forget_delta_links` removes the saved delta links first (no
later run follows them, even if this one fails); `approve_plan` lets a blocked plan through when it
is exactly the plan whose digest it names. Failures, blocked plans and new quarantined objects alert.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import chain, dag

from domain_sync.dag_params import approve_plan_param, dry_run_param, forget_delta_links_param
from domain_sync.ops_settings import OpsSettings
from domain_sync.run_keys import FULL_RESYNC_DAG_ID
from domain_sync.tasks import (
    APPLY_POOL,
    TENANT,
    apply_tasks,
    default_args,
    raise_alerts_task,
    release_state_lock_task,
    stage_task,
)

FULL = {"full_resync": True}


@dag(
    dag_id=FULL_RESYNC_DAG_ID,
    schedule=OpsSettings.from_env().full_resync_schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["domain-sync", "entra-id", "active-directory", "full-resync"],
    default_args=default_args(),
    params={"dry_run": dry_run_param(), "forget_delta_links": forget_delta_links_param(),
            "approve_plan": approve_plan_param()},
)
def tenant_to_domain_full_resync():
    extract = [stage_task("extract_users", FULL, inlets=[TENANT]),
               stage_task("extract_groups", FULL, inlets=[TENANT])]
    chain(stage_task("forget_delta_links"), extract, stage_task("transform", FULL),
          stage_task("validate", FULL), stage_task("plan", FULL), *apply_tasks(FULL),
          stage_task("commit", FULL, pool=APPLY_POOL),
          stage_task("report", FULL), [release_state_lock_task(), raise_alerts_task()])


tenant_to_domain_full_resync()
