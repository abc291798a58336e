"""
### Domain sync watchdog

Every 5 minutes (`DOMAIN_SYNC_WATCHDOG_SCHEDULE`): checks when `tenant_to_domain_sync` last succeeded
(its successful runs in Airflow, and the last commit of the sync state) and alerts (`sync_stale`) when
that is longer ago than `DOMAIN_SYNC_FRESHNESS_MINUTES` (30), whether its runs fail, hang or are not
scheduled at all, and (`sync_paused`) whenever the sync DAG is paused. An alert is repeated at most once
per freshness window while the condition lasts; `sync_fresh_again` closes a stale period. Keep this DAG
unpaused: a per-run deadline cannot tell that no run was scheduled.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from domain_sync.ops_settings import OpsSettings
from domain_sync.run_keys import WATCHDOG_DAG_ID
from domain_sync.tasks import default_args, freshness_task


@dag(
    dag_id=WATCHDOG_DAG_ID,
    schedule=OpsSettings.from_env().watchdog_schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["domain-sync", "monitoring"],
    default_args=default_args(),
)
def domain_sync_watchdog():
    freshness_task()


domain_sync_watchdog()
