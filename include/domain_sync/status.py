"""The sync's status for people: what the "Domain sync" page in the Airflow UI shows (plugins/domain_sync_status.py).

Read from the data folder only (run folders, the state, the alerting records), never from the domain or
the tenant, so the page is cheap and shows what the runs found:

- the last successful sync and its freshness (the watchdog's record, or the last commit), against
  DOMAIN_SYNC_FRESHNESS_MINUTES;
- the synced users and groups the latest plan found in the domain, and what its run changed;
- the latest plan: run, status (clear, approved, blocked), digest, changes, the reasons it is blocked;
- quarantined objects and collisions of the latest run that validated and planned;
- objects failing run after run, and those quarantined for it that the latest plan held (domain_sync.failing);
- the saved delta links' ages (Graph forgets them after 7 days);
- the latest alerts.

`python -m domain_sync.status [DATA_DIR]` prints it as JSON.
"""

from __future__ import annotations

import html
import json
import sys
from datetime import UTC, datetime
from typing import Any

from domain_sync.alerts import read_alerts
from domain_sync.config import Settings
from domain_sync.failing import failing_objects, release_advice
from domain_sync.freshness import last_commit, watchdog_file
from domain_sync.ops_settings import OpsSettings
from domain_sync.run_keys import DRIFT_DAG_ID
from domain_sync.runs import RunFolder, runs_by_time
from domain_sync.state import APPLY_STOPPED, StateStore
from domain_sync.storage import read_document, read_json

SHOWN = 50


def sync_runs(settings: Settings) -> list[RunFolder]:
    """Folders of runs that may write (the sync, the full resync, on-demand), newest first; drift checks apart."""
    return [RunFolder(settings.runs_dir, run.path.name) for run in runs_by_time(settings.runs_dir, newest_first=True)
            if run.has_summary and not run.path.name.startswith(f"{DRIFT_DAG_ID}.")]


def _latest(runs: list[RunFolder], has) -> tuple[RunFolder | None, dict]:
    for run in runs:
        summary = run.summary()
        if has(run, summary):
            return run, summary
    return None, {}


def after_run(plan: dict, applied: dict) -> dict[str, int]:
    """Synced objects per type once the run's apply went through: found by the plan, plus created, less deleted."""
    found = plan.get("synced_in_domain") or {}
    writes = applied.get("writes") or {}
    if not applied or applied.get("dry_run") or applied.get(APPLY_STOPPED) or applied.get("aborted"):
        return {kind: found.get(kind, 0) for kind in ("user", "group")}
    return {kind: found.get(kind, 0) + writes.get(f"{kind}.create", 0) - writes.get(f"{kind}.delete", 0)
            for kind in ("user", "group")}


def collect(settings: Settings, ops: OpsSettings | None = None, now: datetime | None = None) -> dict[str, Any]:
    ops = ops or OpsSettings.from_env()
    now = now or datetime.now(UTC)
    runs = sync_runs(settings)
    watchdog = read_document(watchdog_file(settings), {}) or {}
    seen = datetime.fromisoformat(watchdog["last_success"]) if watchdog.get("last_success") else None
    known = [t for t in (seen, last_commit(settings)) if t]
    last = max(known) if known else None
    last_success = last.isoformat() if last else None
    minutes = (now - last).total_seconds() / 60 if last else None
    plan_run, plan_summary = _latest(runs, lambda r, s: isinstance(s.get("plan"), dict))
    plan = plan_summary.get("plan") or {}
    applied = plan_summary.get("apply") or {}
    quarantine_run, _ = _latest(runs, lambda r, s: r.quarantine.exists())
    collisions_run, _ = _latest(runs, lambda r, s: r.plan.exists())
    state = StateStore(settings.state_dir)
    return {
        "at": now.isoformat(),
        "freshness": {
            "last_success": last_success, "minutes_since": None if minutes is None else round(minutes, 1),
            "limit_minutes": ops.freshness_minutes,
            "fresh": minutes is not None and minutes <= ops.freshness_minutes,
            "paused": watchdog.get("paused"), "checked_at": watchdog.get("checked_at"),
        },
        "synced": {"run": plan_run.run_id if plan_run else None, **(plan.get("synced_in_domain") or {}),
                   "after_run": after_run(plan, applied),
                   "writes": applied.get("writes") or {}, "dry_run": bool(applied.get("dry_run"))},
        "plan": {"run": plan_run.run_id if plan_run else None, "status": plan.get("status"),
                 "digest": plan.get("digest"), "changes": plan.get("changes"), "counts": plan.get("counts") or {},
                 "blocked_reasons": plan.get("blocked_reasons") or [],
                 "held_failing": (plan.get("held_failing") or {}).get("count", 0),
                 "failed": plan.get("failed"), "blocked": plan.get("status") == "blocked"
                 or str(plan.get("failed") or "").startswith("PlanBlocked")},
        "quarantined": {"run": quarantine_run.run_id if quarantine_run else None,
                        "objects": read_json(quarantine_run.quarantine, []) if quarantine_run else []},
        "collisions": {"run": collisions_run.run_id if collisions_run else None,
                       "objects": (read_json(collisions_run.collisions, []) or []) if collisions_run else []},
        "failing": failing_objects(settings),
        "delta_link_ages_days": {k: round(v, 2) for k, v in state.delta_link_ages(now).items()},
        "alerts": [{**a, "message": str(a.get("message", "")).replace(str(settings.data_root), "<data dir>")
                    .replace(str(settings.data_dir), "<data dir>")} for a in read_alerts(settings)[-10:][::-1]],
    }


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], table_id: str, empty: str = "none") -> str:
    if not rows:
        return f"<p id='{table_id}' class='empty'>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[:SHOWN])
    more = f"<p>... and {len(rows) - SHOWN} more</p>" if len(rows) > SHOWN else ""
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>{more}"


def _of_run(run_id: str | None) -> str:
    return f"<p class='at'>of run {_e(run_id)}</p>" if run_id else ""


def render_html(status: dict[str, Any]) -> str:
    fresh, synced, plan = status["freshness"], status["synced"], status["plan"]
    if fresh["last_success"] is None:
        freshness = "no successful sync yet"
    else:
        freshness = (f"last successful sync {fresh['last_success']} ({fresh['minutes_since']} minutes ago; limit "
                     f"{fresh['limit_minutes']:g}): {'fresh' if fresh['fresh'] else 'STALE'}")
    if fresh.get("paused"):
        freshness += " - the sync DAG is PAUSED"
    plan_state = "BLOCKED" if plan["blocked"] else (plan["status"] or ("failed" if plan["failed"] else "none"))
    writes = ", ".join(f"{k} {v}" for k, v in sorted(synced["writes"].items())) or "no writes"
    sections = [
        f"<h1>Domain sync</h1><p class='at'>as of {_e(status['at'])}</p>",
        f"<h2>Freshness</h2><p id='freshness' class='{'ok' if fresh['fresh'] else 'bad'}'>{_e(freshness)}</p>",
        "<h2>Synced objects</h2>" + _table(
            ["type", "in the domain", "found by the plan"],
            [[label, synced["after_run"].get(kind, 0), synced.get(kind, 0)] for kind, label in
             (("user", "users"), ("group", "groups"))], "synced")
        + (f"<p>run {_e(synced['run'])} wrote: {_e(writes)}"
           f"{' (dry run)' if synced['dry_run'] else ''}</p>" if synced["run"] else ""),
        "<h2>Latest plan</h2>" + (
            f"<p id='plan' class='{'bad' if plan['blocked'] else 'ok'}'>run {_e(plan['run'])}: {_e(plan_state)}, "
            f"{_e(plan['changes'])} changes, digest {_e(plan['digest'])}</p>" if plan["run"]
            else "<p id='plan' class='empty'>no plan yet</p>")
        + _table(["change", "count"], [[k, v] for k, v in sorted(plan["counts"].items())], "plan-counts", "no changes")
        + "".join(f"<p class='bad'>blocked: {_e(r)}</p>" for r in plan["blocked_reasons"])
        + (f"<p class='bad'>failed: {_e(plan['failed'])}</p>" if plan["failed"] else ""),
        "<h2>Quarantined objects</h2>" + _of_run(status["quarantined"]["run"])
        + _table(["object", "kind", "rule", "attribute"],
                 [[q.get("anchor"), q.get("kind"), q.get("rule"), q.get("attribute")]
                  for q in status["quarantined"]["objects"]], "quarantined"),
        "<h2>Collisions</h2>" + _of_run(status["collisions"]["run"])
        + _table(["object", "kind", "attribute", "value", "held by"],
                 [[c.get("anchor"), c.get("kind"), c.get("attribute"), c.get("value"), c.get("local_dn")]
                  for c in status["collisions"]["objects"]], "collisions"),
        "<h2>Failing objects</h2>"
        + (f"<p class='bad'>{plan['held_failing']} held by the latest plan: {_e(release_advice())}</p>"
           if plan.get("held_failing") else "")
        + _table(["object", "kind", "runs in a row", "first seen", "last run", "operation", "last error", "quarantined"],
                 [[a, f.get("kind"), f.get("runs"), (f.get("first_seen") or {}).get("at"), f.get("last_run"),
                   f.get("op"), f.get("last_error"),
                   f"since run {f['quarantined'].get('run')}" if f.get("quarantined") else "no"]
                  for a, f in sorted(status["failing"].items())], "failing"),
        "<h2>Delta links</h2>"
        + _table(["resource", "age (days)"], [[k, v] for k, v in sorted(status["delta_link_ages_days"].items())],
                 "delta-links", "no saved delta link"),
        "<h2>Latest alerts</h2>"
        + _table(["at", "kind", "message"], [[a.get("at"), a.get("kind"), a.get("message")]
                                              for a in status["alerts"]], "alerts"),
    ]
    style = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}"
             ".bad{color:#b00020;font-weight:bold}.ok{color:#1b5e20}.at,.empty{color:#666}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Domain sync</title><style>{style}</style>"
            f"</head><body>{''.join(sections)}</body></html>")


def main(argv: list[str]) -> int:
    from dataclasses import replace

    settings = Settings.from_env()
    if argv:
        settings = replace(settings, data_dir=argv[0])
    print(json.dumps(collect(settings), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
