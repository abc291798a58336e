"""Entry points of the DAG's tasks: one call per stage, errors sorted into retry / no retry.

Errors a retry cannot fix (bad credentials, a bad mapping file, a systemic data problem, a plan
stopped by the deletion guard) fail the task at once; the others (Graph or the domain unreachable,
throttling beyond the budget) leave it to Airflow's retries.
"""

from __future__ import annotations

import logging
from typing import Any

from domain_sync.config import Settings
from domain_sync.runs import RunFolder, read_json

log = logging.getLogger(__name__)


def _final_errors() -> tuple[type[BaseException], ...]:
    from domain_sync.apply.stage import ApplyFailed
    from domain_sync.config import SettingsError
    from domain_sync.domain import DomainConnectionError
    from domain_sync.extract.graph_reader import TenantAuthError
    from domain_sync.plan.stage import PlanBlocked
    from domain_sync.transform.mapping import MappingError
    from domain_sync.validate.suites import SystemicValidationError

    return (TenantAuthError, MappingError, SystemicValidationError, PlanBlocked, ApplyFailed, DomainConnectionError,
            SettingsError)


def stage_function(name: str):
    if name in ("extract_users", "extract_groups"):
        from domain_sync.extract.stage import extract_resource

        resource = name.split("_", 1)[1]
        return lambda s, run, p: extract_resource(s, run, resource, bool(p.get("full_resync"))).to_json()
    if name == "transform":
        from domain_sync.domain import endpoint_from_airflow
        from domain_sync.transform.stage import transform_run

        return lambda s, run, p: transform_run(s, run, endpoint_from_airflow(s.domain_conn_id))
    if name == "validate":
        from domain_sync.validate.stage import validate_run

        return lambda s, run, p: validate_run(s, run)
    if name == "plan":
        from domain_sync.domain import endpoint_from_airflow
        from domain_sync.plan.stage import plan_run

        return lambda s, run, p: plan_run(s, run, endpoint_from_airflow(s.domain_conn_id),
                                          approve_deletions=bool(p.get("approve_deletions")))
    if name == "apply":
        from domain_sync.apply.stage import apply_run
        from domain_sync.domain import endpoint_from_airflow

        return lambda s, run, p: apply_run(s, run, endpoint_from_airflow(s.domain_conn_id),
                                           dry_run=bool(p.get("dry_run")))
    if name == "commit":
        from domain_sync.state import StateStore, commit_run

        return lambda s, run, p: commit_run(StateStore(s.state_dir), run.path, dry_run=bool(p.get("dry_run")))
    if name == "report":
        return report_run
    raise ValueError(f"unknown stage {name!r}")


def run_stage(name: str, run_id: str, params: dict[str, Any] | None, settings: Settings | None = None) -> dict:
    settings = settings or Settings.from_env()
    run = RunFolder(settings.runs_dir, run_id)
    params = dict(params or {})
    try:
        result = stage_function(name)(settings, run, params)
    except _final_errors() as exc:
        from airflow.sdk.exceptions import AirflowFailException

        run.update_summary(name, {"failed": str(exc)})
        raise AirflowFailException(f"{name}: {exc}") from exc
    run.update_summary(name, result)
    return result


def report_run(settings: Settings, run: RunFolder, params: dict) -> dict:
    """The run summary: counts per stage, and alerts for what needs a person's eye."""
    from domain_sync.alerts import raise_alert

    summary = read_json(run.summary_file, {}) or {}
    for resource in ("extract_users", "extract_groups"):
        if (summary.get(resource) or {}).get("expired_link_recovered"):
            raise_alert(settings, "delta_link_expired",
                        f"{resource.split('_')[1]} delta link had expired; run {run.run_id} read the whole tenant "
                        f"and reconciled fully", run_id=run.run_id)
    quarantined = sum((summary.get("validate") or {}).get("quarantined", {}).values())
    collisions = (summary.get("plan") or {}).get("collisions", 0)
    if quarantined or collisions:
        raise_alert(settings, "objects_quarantined",
                    f"run {run.run_id}: {quarantined} objects quarantined by validation, {collisions} by name "
                    f"collisions with local objects; see {run.path}", run_id=run.run_id)
    applied = summary.get("apply") or {}
    counts = {
        "writes": applied.get("writes", {}),
        "total_writes": applied.get("total_writes", 0),
        "planned": (summary.get("plan") or {}).get("counts", {}),
        "quarantined": quarantined,
        "collisions": collisions,
        "run_folder": str(run.path),
    }
    log.info("run %s summary: %s", run.run_id, counts)
    return counts
