"""Alerts: what an operator sees when a task fails or a run needs attention.

Each alert is logged, written as one JSON object to <data_dir>/alerts/<time>-<id>.json (what a monitoring
agent or a test can follow, in name order; one object per alert, as tasks on several machines raise them;
`read_alerts` also reads the alerts.jsonl of earlier releases), and delivered to people by mail and/or a
chat webhook (domain_sync.delivery; DOMAIN_SYNC_ALERT_CHANNELS), wherever it is raised.

An alert that must reach people once per run, whichever of the run's tasks finds its condition, goes
through the run's alert ledger (`raise_alert_once`; the run-level alerts of run_alerts.py use it too).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

from domain_sync.config import Settings
from domain_sync.storage import (
    StoragePath,
    children,
    private_dir,
    read_bytes,
    read_document,
    update_document,
    write_json_atomic,
)

log = logging.getLogger(__name__)

LEDGER_RUNS = 200  # runs remembered in the alert ledger


def alerting_dir(settings: Settings) -> StoragePath:
    """<data dir>/alerting (0700): what alerting keeps between runs (ledger, failing objects, watchdog)."""
    return private_dir(settings.data_root / "alerting", root=settings.data_root)


def _alerts_dir(settings: Settings) -> StoragePath:
    return private_dir(settings.data_root / "alerts", root=settings.data_root)


def raise_alert(settings: Settings, kind: str, message: str, **details) -> dict:
    now = datetime.now(UTC)
    alert = {"at": now.isoformat(), "kind": kind, "message": message, **details}
    write_json_atomic(_alerts_dir(settings) / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}.json",
                      alert, compact=True)
    log.warning("ALERT %s: %s", kind, message)
    from domain_sync.delivery import deliver

    deliver(alert)
    return alert


def read_alerts(settings: Settings) -> list[dict]:
    """Every alert raised, oldest first."""
    legacy = read_bytes(settings.data_root / "alerts.jsonl")
    alerts = [json.loads(line) for line in (legacy or b"").decode("utf-8").splitlines() if line.strip()]
    for path in sorted(children(settings.data_root / "alerts"), key=lambda p: p.name):
        if path.name.endswith(".json") and not path.name.startswith("."):
            data = read_bytes(path)
            if data:
                alerts.append(json.loads(data))
    return alerts


def _ledger_path(settings: Settings) -> StoragePath:
    """The alert ledger: {run id: [keys of the alerts raised for that run]}, shared by every task of a run
    (storage.update_document)."""
    return alerting_dir(settings) / "ledger.json"


def raised_for_run(settings: Settings, run_id: str) -> set[str]:
    """The keys of the alerts already raised for `run_id` (by any task, in any process)."""
    return set((read_document(_ledger_path(settings), {}) or {}).get(run_id) or [])


def record_raised(settings: Settings, run_id: str, keys: set[str]) -> set[str]:
    """Add `keys` to the run's entry in the ledger; returns the keys that were not there yet."""
    new: set[str] = set()

    def add(current: dict | None) -> dict | None:
        ledger = dict(current or {})
        known = set(ledger.get(run_id) or [])
        new.clear()
        new.update(keys - known)
        if not new:
            return current
        ledger[run_id] = sorted(known | keys)
        for old in list(ledger)[:-LEDGER_RUNS]:
            del ledger[old]
        return ledger

    update_document(_ledger_path(settings), add)
    return set(new)


def raise_alert_once(settings: Settings, run_id: str, key: str, kind: str, message: str, **details) -> dict | None:
    """Raise the alert unless one with `key` was raised for this run already: the several tasks (and
    processes) of one run raise it once, every run raises it again. None when it was raised before."""
    if not record_raised(settings, run_id, {key}):
        return None
    return raise_alert(settings, kind, message, run_id=run_id, **details)
