"""The stages of a run, by task name, and the one way a task runs a stage.

Each stage is `run(ctx) -> dict` in its package; a task calls `run_stage(name, run_id, params)`,
which records the stage's summary (or its failure) in the run's summary.json. Which errors are
retried is declared once, in `retry_policy()` (domain_sync.errors holds the taxonomy).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from domain_sync.apply.phases import BATCH_PARAM
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.errors import UnknownName
from domain_sync.runs import RunFolder

log = logging.getLogger(__name__)

# task name -> (module, function); modules are imported only when their task runs.
STAGES: dict[str, tuple[str, str]] = {
    "extract_users": ("domain_sync.extract.stage", "run_users"),
    "extract_groups": ("domain_sync.extract.stage", "run_groups"),
    "transform": ("domain_sync.transform.stage", "run"),
    "validate": ("domain_sync.validate.stage", "run"),
    "plan": ("domain_sync.plan.stage", "run"),
    "apply": ("domain_sync.apply.stage", "run"),
    # The apply spread over mapped tasks (domain_sync.tasks.apply_tasks): cut the plan, write one batch.
    "apply_batches": ("domain_sync.apply.stage", "prepare_batches"),
    "apply_batch": ("domain_sync.apply.stage", "run_batch"),
    "credentials": ("domain_sync.credentials.stage", "run"),
    "commit": ("domain_sync.state", "run"),
    "report": ("domain_sync.summary", "run"),
    # The alerts teardown every stage DAG ends with (tasks.raise_alerts_task); drift report, forgetting delta links.
    "alerts": ("domain_sync.run_alerts", "run"),
    "drift_report": ("domain_sync.drift", "run"),
    "forget_delta_links": ("domain_sync.delta_reset", "run"),
}


def stage_function(name: str):
    try:
        module, function = STAGES[name]
    except KeyError:
        raise UnknownName(f"unknown stage {name!r}; expected one of {sorted(STAGES)}") from None
    return getattr(importlib.import_module(module), function)


def run_stage(name: str, run_id: str, params: dict[str, Any] | None, settings: Settings | None = None) -> dict:
    settings = settings or Settings.from_env()
    ctx = StageContext(settings, RunFolder(settings.runs_dir, run_id), dict(params or {}))
    # A mapped apply task's summary section is its batch's (summary/<stage>.<batch>.json): batches run at once.
    section = ctx.run.batch_section(name, str(ctx.params[BATCH_PARAM])) if ctx.params.get(BATCH_PARAM) else name
    try:
        result = stage_function(name)(ctx)
    except Exception as exc:
        ctx.run.update_summary(section, {"failed": f"{type(exc).__name__}: {exc}"})
        raise
    ctx.run.update_summary(section, result)
    return result


def retry_policy():
    """Only what a retry can fix is retried: transient errors (a busy or absent tenant or domain), the
    connection-level built-ins a client library may let through (ConnectionError, TimeoutError, OSError)
    and a task that outran its execution_timeout (a hung connection). Permanent errors, and every other
    exception (a defect: a retry repeats it), fail the task at once."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(rules=[
        # The first matching rule wins: a permanent error that is also an OSError stays permanent.
        RetryRule(exception="domain_sync.errors.PermanentError", action=RetryAction.FAIL,
                  reason="a permanent error: retrying cannot help"),
        RetryRule(exception=["domain_sync.errors.TransientError", ConnectionError, TimeoutError, OSError,
                             "airflow.sdk.exceptions.AirflowTaskTimeout"],
                  action=RetryAction.DEFAULT, reason="a transient or connection error: the task's retries may help"),
    ], default=RetryAction.FAIL)
