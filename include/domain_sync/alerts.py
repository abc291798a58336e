"""Alerts: what an operator sees when a task fails or a run needs attention.

Each alert is logged, appended as one JSON line to <data_dir>/alerts.jsonl (what a monitoring
agent or a test can follow; 0600 in the 0700 data folder), and delivered to people by mail and/or a
chat webhook (domain_sync.delivery; DOMAIN_SYNC_ALERT_CHANNELS), wherever it is raised.

An alert that must reach people once per run, whichever of the run's tasks finds its condition, goes
through the run's alert ledger (`raise_alert_once`; the run-level alerts of run_alerts.py use it too).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from domain_sync.config import Settings
from domain_sync.runs import locked, open_private, private_dir, read_json, write_json_atomic

log = logging.getLogger(__name__)

LEDGER_RUNS = 200  # runs remembered in the alert ledger


def alerting_dir(settings: Settings) -> Path:
    """<data dir>/alerting (0700): what alerting keeps between runs (ledger, failing objects, watchdog)."""
    return private_dir(Path(settings.data_dir) / "alerting", root=Path(settings.data_dir))


def raise_alert(settings: Settings, kind: str, message: str, **details) -> dict:
    alert = {"at": datetime.now(UTC).isoformat(), "kind": kind, "message": message, **details}
    path = Path(settings.data_dir) / "alerts.jsonl"
    private_dir(path.parent, root=path.parent)
    with open_private(path) as handle:
        handle.write(json.dumps(alert, default=str) + "\n")
    log.warning("ALERT %s: %s", kind, message)
    from domain_sync.delivery import deliver

    deliver(alert)
    return alert


def read_alerts(settings: Settings) -> list[dict]:
    path = Path(settings.data_dir) / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _ledger_path(settings: Settings) -> Path:
    """The alert ledger: {run id: [keys of the alerts raised for that run]}, shared by every task of a run."""
    return alerting_dir(settings) / "ledger.json"


def raised_for_run(settings: Settings, run_id: str) -> set[str]:
    """The keys of the alerts already raised for `run_id` (by any task, in any process)."""
    path = _ledger_path(settings)
    with locked(path):
        return set((read_json(path, {}) or {}).get(run_id) or [])


def record_raised(settings: Settings, run_id: str, keys: set[str]) -> set[str]:
    """Add `keys` to the run's entry in the ledger; returns the keys that were not there yet."""
    path = _ledger_path(settings)
    with locked(path):
        ledger = read_json(path, {}) or {}
        known = set(ledger.get(run_id) or [])
        ledger[run_id] = sorted(known | keys)
        for old in list(ledger)[:-LEDGER_RUNS]:
            del ledger[old]
        write_json_atomic(path, ledger)
    return keys - known


def raise_alert_once(settings: Settings, run_id: str, key: str, kind: str, message: str, **details) -> dict | None:
    """Raise the alert unless one with `key` was raised for this run already: the several tasks (and
    processes) of one run raise it once, every run raises it again. None when it was raised before."""
    if not record_raised(settings, run_id, {key}):
        return None
    return raise_alert(settings, kind, message, run_id=run_id, **details)
