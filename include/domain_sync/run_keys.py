"""Which run folder (and state lock holder name) a DAG run uses.

Run ids are unique within a DAG only: the sync DAG and the full resync DAG both make
`scheduled__2026-01-04T03:00:00+00:00` and `backfill__...` runs. The sync DAG's runs keep their
run id as the key (the layout every tool and test knows); the other DAGs' runs are keyed
`<dag id>.<run id>`, so no two runs ever share a run folder or the state lock.
"""

from __future__ import annotations

SYNC_DAG_ID = "tenant_to_domain_sync"
FULL_RESYNC_DAG_ID = "tenant_to_domain_full_resync"
DRIFT_DAG_ID = "domain_drift_check"
OBJECTS_DAG_ID = "tenant_objects_sync"
WATCHDOG_DAG_ID = "domain_sync_watchdog"


def run_key(dag_id: str | None, run_id: str) -> str:
    """The key of a DAG run's folder under <data dir>/runs (before runs.safe_run_name)."""
    if not dag_id or dag_id == SYNC_DAG_ID:
        return run_id
    return f"{dag_id}.{run_id}"
