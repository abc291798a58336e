"""Params and schedules of the DAGs, declared once so that the trigger forms read the same everywhere."""

from __future__ import annotations

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param

from domain_sync.naming import OBJECT_ID_PATTERN
from domain_sync.ops_settings import OpsSettings


def full_resync_param() -> Param:
    return Param(False, type="boolean", title="Full resync",
                 description="Read every tenant object again instead of the changes since the last run (and remove "
                             "what the tenant no longer has).")


def dry_run_param() -> Param:
    return Param(False, type="boolean", title="Dry run",
                 description="Stop after the plan: write nothing to the domain, save no delta link.")


def approve_plan_param() -> Param:
    return Param("", type="string", pattern="^$|^[0-9a-f]{64}$", title="Approve plan",
                 description="The digest of a blocked plan (in the blocked run's plan/plan.txt, its error and its "
                             "summary) to apply exactly that plan. If the tenant changed since, the plan has other "
                             "changes and the run is blocked again with a new digest.")


def forget_delta_links_param() -> Param:
    return Param(False, type="boolean", title="Forget saved delta links",
                 description="Remove the saved delta links before reading, so that no later run follows them even "
                             "if this one fails (a garbled link, a tenant that was reset). The run saves the new "
                             "links it receives when it succeeds. Ignored by a dry run.")


def object_ids_param() -> Param:
    return Param([], type="array", items={"type": "string", "pattern": OBJECT_ID_PATTERN}, minItems=1, maxItems=50,
                 uniqueItems=True, title="Tenant object ids",
                 description="Object ids (GUIDs) of the tenant users and groups to sync now, 1 to 50, one per line. "
                             "Only their changes are planned and applied (with the containers they need); everything "
                             "else is left to the next sync run.")


def drift_schedule(domain: Asset):
    """Daily at DOMAIN_SYNC_DRIFT_SCHEDULE; with DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS=true also after every sync run
    that wrote the domain (its asset event)."""
    ops = OpsSettings.from_env()
    if not ops.drift_follows_sync:
        return ops.drift_schedule
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(ops.drift_schedule, timezone="UTC"), assets=domain)
