"""Freshness of the sync: the watchdog's check that the incremental sync keeps succeeding.

A per-run deadline (Airflow's DeadlineAlert) fires only for a run that exists: it says nothing when
runs are not scheduled at all (a paused DAG, a scheduler that skips it, a DAG that fails to parse).
So a watchdog DAG checks, every few minutes, when the sync last succeeded:

- from Airflow: the number of successful runs of the sync DAG (the Task SDK's `get_dr_count`; a task
  process has no database access) and whether the DAG is paused (`get_dag`); the watchdog notes the
  time it first saw the count rise, in <data dir>/alerting/watchdog.json;
- from the state: the time of the last commit (every successful sync, full resync or on-demand run
  commits; the delta links' `saved_at`).

The later of the two is the last success (before either is known: when the watchdog first looked).
Older than `DOMAIN_SYNC_FRESHNESS_MINUTES` (30): a `sync_stale` alert; a paused sync DAG: a
`sync_paused` alert. Each is raised again at most once per freshness window while it lasts, and a
`sync_fresh_again` alert closes a stale period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from domain_sync.alerts import alerting_dir, raise_alert
from domain_sync.config import Settings
from domain_sync.ops_settings import OpsSettings
from domain_sync.run_keys import SYNC_DAG_ID
from domain_sync.state import StateStore
from domain_sync.storage import StoragePath, update_document

log = logging.getLogger(__name__)


def watchdog_file(settings: Settings) -> StoragePath:
    """The watchdog's record (a document: storage.update_document)."""
    return alerting_dir(settings) / "watchdog.json"


def last_commit(settings: Settings) -> datetime | None:
    times = [datetime.fromisoformat(e["saved_at"]) for e in StateStore(settings.state_dir).delta_links().values()
             if e.get("saved_at")]
    return max(times) if times else None


def airflow_view(dag_id: str = SYNC_DAG_ID) -> dict[str, Any]:
    """{"paused", "successes", "next_run"} of the sync DAG, asked through the Task SDK (inside a task only)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    dag = RuntimeTaskInstance.get_dag(dag_id)
    return {"paused": bool(dag.is_paused), "next_run": dag.next_dagrun,
            "successes": RuntimeTaskInstance.get_dr_count(dag_id, states=["success"])}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def check_freshness(settings: Settings, ops: OpsSettings | None = None,
                    view: Callable[[], dict[str, Any]] = airflow_view, now: datetime | None = None) -> dict:
    """The watchdog task: alerts when the sync is stale or paused; returns what it found."""
    ops = ops or OpsSettings.from_env()
    now = now or datetime.now(UTC)
    seen = view()
    window = timedelta(minutes=ops.freshness_minutes)
    committed = last_commit(settings)
    found: dict[str, Any] = {}

    def look(before: dict | None) -> dict:
        """The new watchdog record and, in `found`, the alerts it calls for (raised once the record is saved:
        this may run again when another watchdog saved one first)."""
        record = before or {}
        first_look = _parse(record.get("first_look")) or now
        rose_at = _parse(record.get("successes_rose_at"))
        if record.get("successes") is not None and seen["successes"] > record["successes"]:
            rose_at = now
        known = [t for t in (rose_at, committed) if t]
        last_success = max(known) if known else None
        age = now - (last_success or first_look)
        stale = age > window
        alerted = dict(record.get("alerted") or {})
        raised = []

        def due(kind: str) -> bool:
            at = _parse(alerted.get(kind))
            return at is None or now - at >= window

        if stale and due("sync_stale"):
            alerted["sync_stale"] = now.isoformat()
            raised.append("sync_stale")
        if seen["paused"] and due("sync_paused"):
            alerted["sync_paused"] = now.isoformat()
            raised.append("sync_paused")
        if not stale and alerted.pop("sync_stale", None):
            raised.append("sync_fresh_again")
        if not seen["paused"]:
            alerted.pop("sync_paused", None)
        found.update(last_success=last_success, minutes=age.total_seconds() / 60, stale=stale, raised=raised)
        return {"first_look": first_look.isoformat(), "successes": seen["successes"],
                "successes_rose_at": _iso(rose_at), "checked_at": now.isoformat(),
                "last_success": _iso(last_success), "stale": stale, "paused": seen["paused"], "alerted": alerted}

    update_document(watchdog_file(settings), look)
    last_success, minutes, stale, raised = found["last_success"], found["minutes"], found["stale"], found["raised"]
    since = f"last success {_iso(last_success)}" if last_success else "no success seen since the watchdog started"
    if "sync_stale" in raised:
        raise_alert(settings, "sync_stale",
                    f"the sync DAG {SYNC_DAG_ID} has not succeeded for {minutes:.0f} minutes (limit "
                    f"{ops.freshness_minutes:g}): {since}; the DAG is {'paused' if seen['paused'] else 'active'}, "
                    f"next run {_iso(seen.get('next_run'))}", dag_id=SYNC_DAG_ID,
                    last_success=_iso(last_success), minutes=round(minutes, 1))
    if "sync_paused" in raised:
        raise_alert(settings, "sync_paused", f"the sync DAG {SYNC_DAG_ID} is paused: nothing is synced until it "
                                             f"is unpaused ({since})", dag_id=SYNC_DAG_ID)
    if "sync_fresh_again" in raised:
        raise_alert(settings, "sync_fresh_again", f"the sync DAG {SYNC_DAG_ID} succeeded again ({since})",
                    dag_id=SYNC_DAG_ID)
    log.info("freshness: last success %s (%.1f minutes ago), paused %s, raised %s", _iso(last_success), minutes,
             seen["paused"], raised)
    return {"last_success": _iso(last_success), "minutes_since": round(minutes, 1), "stale": stale,
            "paused": seen["paused"], "raised": raised}
