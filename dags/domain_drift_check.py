"""
### Domain drift check

Daily (`DOMAIN_SYNC_DRIFT_SCHEDULE`, 06:00 UTC; with `DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS=true` also after
every sync run that wrote the domain): reads the whole tenant and the domain and writes nothing. The
sync's own stages run as a dry run (`extract_users`, `extract_groups`, `transform`, `validate`, `plan`
with `full_resync` and `dry_run`), then `drift_report` classifies the plan and its collisions:

- objects changed by hand in the domain (values, names, places, memberships),
- synced objects missing in the domain,
- owned objects the tenant no longer has, and users to disable,
- collisions with other objects.

The report is `drift/report.txt` (and `report.json`) in the run folder; anything found raises a
`drift_found` alert. The drift check takes the state lock like a sync run and frees it at the end
(`release_state_lock`), so it never reads the state while a sync commits.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import chain, dag

from domain_sync.dag_params import drift_schedule
from domain_sync.run_keys import DRIFT_DAG_ID
from domain_sync.tasks import DOMAIN, TENANT, default_args, raise_alerts_task, release_state_lock_task, stage_task

READ_ONLY = {"full_resync": True, "dry_run": True}


@dag(
    dag_id=DRIFT_DAG_ID,
    schedule=drift_schedule(DOMAIN),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["domain-sync", "entra-id", "active-directory", "drift"],
    default_args=default_args(),
)
def domain_drift_check():
    extract = [stage_task("extract_users", READ_ONLY, inlets=[TENANT]),
               stage_task("extract_groups", READ_ONLY, inlets=[TENANT])]
    chain(extract, stage_task("transform", READ_ONLY), stage_task("validate", READ_ONLY),
          stage_task("plan", READ_ONLY, inlets=[DOMAIN]), stage_task("drift_report", READ_ONLY),
          [release_state_lock_task(), raise_alerts_task()])


domain_drift_check()
