"""
### Sync chosen tenant objects now

On demand: trigger with the object ids (GUIDs) of 1 to 50 tenant users or groups. The run is the
sync's own (extract the tenant's changes, transform, validate, plan, apply, commit, report), with the
plan restricted to the changes of those objects (and the containers they need); the rest is left to
the next `tenant_to_domain_sync` run, which plans the whole tenant again.

Params: `object_ids` (the form takes one per line), `dry_run` stops after the plan, `approve_plan`
lets a blocked plan through by its digest. Runs share the state lock with the sync DAG.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import chain, dag

from domain_sync.dag_params import approve_plan_param, dry_run_param, object_ids_param
from domain_sync.run_keys import OBJECTS_DAG_ID
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
    dag_id=OBJECTS_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["domain-sync", "entra-id", "active-directory", "on-demand"],
    default_args=default_args(),
    params={"object_ids": object_ids_param(), "dry_run": dry_run_param(), "approve_plan": approve_plan_param()},
)
def tenant_objects_sync():
    extract = [stage_task("extract_users", inlets=[TENANT]), stage_task("extract_groups", inlets=[TENANT])]
    chain(extract, stage_task("transform"), stage_task("validate"), stage_task("plan"), *apply_tasks(),
          stage_task("commit", pool=APPLY_POOL),
          stage_task("report"), [release_state_lock_task(), raise_alerts_task()])


tenant_objects_sync()
