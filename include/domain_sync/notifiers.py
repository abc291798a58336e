"""Alerts as Airflow notifiers: what an operator is told when a task of a sync DAG fails."""

from __future__ import annotations

from airflow.sdk import BaseNotifier


class TaskFailureAlert(BaseNotifier):
    """Raises a `task_failed` alert (domain_sync.alerts) naming the DAG, task, try and the error in one line."""

    def notify(self, context) -> None:
        from domain_sync.alerts import raise_alert
        from domain_sync.config import Settings

        ti = context["ti"]
        error = str(context.get("exception") or "").splitlines()[0:1]
        raise_alert(Settings.from_env(), "task_failed",
                    f"task {ti.task_id} of run {context['run_id']} failed (try {getattr(ti, 'try_number', '?')}): "
                    f"{error[0] if error else 'no error text'}",
                    dag_id=ti.dag_id, task_id=ti.task_id, run_id=context["run_id"])
