"""Alerts: what an operator sees when a task fails or a run needs attention.

Each alert is logged, appended as one JSON line to <data_dir>/alerts.jsonl (what a monitoring
agent or a test can follow; 0600 in the 0700 data folder), and delivered to people by mail and/or a
chat webhook (domain_sync.delivery; DOMAIN_SYNC_ALERT_CHANNELS), wherever it is raised.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from domain_sync.config import Settings
from domain_sync.runs import open_private, private_dir

log = logging.getLogger(__name__)


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
