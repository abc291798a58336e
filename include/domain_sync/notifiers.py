"""Alerts as Airflow notifiers: what an operator is told when a task of a sync DAG fails.

The alert goes where every alert goes (alerts.raise_alert: the task log, <data dir>/alerts/, and mail
and/or a chat webhook through domain_sync.delivery), naming the DAG, task, try, the error in one
line, the run's counts so far and a link to the task's log.
"""

from __future__ import annotations

from airflow.sdk import BaseNotifier


def one_line(error) -> str:
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[0][:500] if lines else "no error text"


def run_counts(summary: dict) -> dict:
    """What the run had done when it failed, from its summary.json: objects read, changes planned, writes."""
    counts = {}
    for stage in ("extract_users", "extract_groups"):
        if isinstance(summary.get(stage), dict) and "objects" in summary[stage]:
            counts[f"{stage.split('_')[1]}_read"] = summary[stage]["objects"]
    plan = summary.get("plan") or {}
    if "changes" in plan:
        counts["planned_changes"] = plan["changes"]
        counts["plan_status"] = plan.get("status")
    quarantined = (summary.get("validate") or {}).get("quarantined")
    if isinstance(quarantined, dict):
        counts["quarantined"] = sum(quarantined.values())
    apply = summary.get("apply") or {}
    if "total_writes" in apply:
        counts["writes"] = apply["total_writes"]
    failed = [stage for stage, result in summary.items()
              if isinstance(result, dict) and isinstance(result.get("failed"), str)]  # not apply's failed objects
    if failed:
        counts["failed_stages"] = failed
    return counts


class TaskFailureAlert(BaseNotifier):
    """Raises a `task_failed` alert naming the DAG, task, try, the error in one line, the counts and the log."""

    def notify(self, context) -> None:
        from domain_sync.alerts import raise_alert
        from domain_sync.config import Settings
        from domain_sync.run_keys import run_key
        from domain_sync.runs import RunFolder

        settings = Settings.from_env()
        ti = context["ti"]
        run_id = context["run_id"]
        try_number = getattr(ti, "try_number", "?")
        error = one_line(context.get("exception"))
        summary = RunFolder(settings.runs_dir, run_key(ti.dag_id, run_id)).summary()
        counts = run_counts(summary)
        try:
            log_url = ti.log_url
        except Exception:  # noqa: BLE001 - no API base URL configured: the alert goes without the link
            log_url = None
        raise_alert(settings, "task_failed",
                    f"task {ti.task_id} of run {run_id} failed (try {try_number}): {error}",
                    dag_id=ti.dag_id, task_id=ti.task_id, run_id=run_id, try_number=try_number, error=error,
                    counts=counts, log_url=log_url)
