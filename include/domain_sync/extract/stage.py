"""The extract stage: one delta round of a resource (users or groups) into the run folder.

No saved delta link (first run) or `full_resync`: a full read. A saved link that cannot be followed
(`SavedLinkUnusable`: Graph no longer knows it, it is for another endpoint, or Graph refuses its token
as garbled or of another query): logged, and one full read in the same task, which makes transform
replace the snapshot (a full reconcile); the run's alerts name it (`delta_link_expired`,
`delta_link_unusable`, domain_sync.run_alerts). A failure of that full read fails the task as it is.
A saved link older than 6 days is logged and alerted (one more day of failed runs and it expires).
The delta link received is written to the run folder only; commit saves it after apply succeeded.

Each extract first takes the state lock for its run (state.hold_state: another run holding it is a
`StateLocked`, retried by Airflow) and records the committed version it read. Saved delta links whose
snapshot files are gone stop the run (`StateLost`, alert `state_lost`) unless `full_resync` is set.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from domain_sync.alerts import raise_alert
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.extract.graph_reader import (
    DeltaLinkExpired,
    DeltaLinkRefused,
    DeltaRound,
    SavedLinkUnusable,
    read_delta,
)
from domain_sync.extract.staging import ParquetSink, TenantPageWriter
from domain_sync.mapping import load_mapping
from domain_sync.records import MEMBER_SCHEMA, object_schema
from domain_sync.runs import RunFolder
from domain_sync.state import DELTA_LINK_WARN_AGE_DAYS, StateLost, StateStore, hold_state
from domain_sync.storage import write_json_atomic

log = logging.getLogger(__name__)

RESOURCES = {"users": "user", "groups": "group"}


@dataclass
class ExtractResult:
    resource: str
    full_read: bool
    expired_link_recovered: bool
    objects: int
    removed: int
    member_changes: int
    pages: int
    requests: int = 0
    retries: int = 0
    delta_link_age_days: float | None = None
    unusable_link_recovered: bool = False  # Graph refused the saved link's token; read in full instead
    saved_link_problem: str | None = None  # why the saved link was not followed, when it was not

    def to_json(self) -> dict:
        return asdict(self)


def _make_hook(settings: Settings):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    # The hook has no HTTP timeout unless given one (DESIGN.md section 5).
    return KiotaRequestAdapterHook(conn_id=settings.tenant_conn_id, timeout=settings.graph_timeout_seconds)


def run_users(ctx: StageContext) -> dict:
    return extract_resource(ctx.settings, ctx.run, "users", ctx.flag("full_resync")).to_json()


def run_groups(ctx: StageContext) -> dict:
    return extract_resource(ctx.settings, ctx.run, "groups", ctx.flag("full_resync")).to_json()


def extract_resource(settings: Settings, run: RunFolder, resource: str, full_resync: bool,
                     hook_factory=_make_hook) -> ExtractResult:
    # Before anything else: the state lock (another run at work: StateLocked, nothing touched) and
    # the committed version this run reads.
    version = hold_state(settings, run)
    state = StateStore(settings.state_dir)
    check_state_whole(settings, state, run, resource, version, full_resync)
    mapping = load_mapping(settings.mapping_file)
    select = mapping.graph_select(RESOURCES[resource])
    saved = state.delta_links().get(resource)
    age = state.delta_link_ages().get(resource)
    if saved and age is not None and age > DELTA_LINK_WARN_AGE_DAYS and not full_resync:
        raise_alert(settings, "delta_link_old",
                    f"the saved {resource} delta link is {age:.1f} days old; Graph forgets delta links after 7 days, "
                    f"then the next run reads the whole tenant (last successful commit: {saved.get('saved_at')})",
                    resource=resource, age_days=round(age, 2), run_id=run.run_id)
    link = None if full_resync or not saved else saved["link"]
    if link and set(select) - set(saved.get("select") or []):
        # A delta link only reports changes of the properties it was made with: a mapping that reads
        # new properties needs a full read, or they would stay empty until each object changes.
        log.warning("the mapping now reads %s properties %s that the saved delta link does not track; "
                    "reading every %s (full reconcile)", resource,
                    sorted(set(select) - set(saved.get("select") or [])), resource)
        link = None
    if full_resync:
        log.info("full resync requested: reading every %s", resource)
    elif link is None:
        log.info("no saved %s delta link: first run, reading every %s", resource, resource)

    unusable: SavedLinkUnusable | None = None
    received_at = datetime.now(UTC)
    try:
        round_, counts = _read_round(settings, run, resource, select, link, hook_factory)
    except SavedLinkUnusable as exc:
        log.warning("%s (saved %s, %.1f days ago); reading every %s instead: full reconcile", exc,
                    resource, age or 0.0, resource)
        unusable = exc
        received_at = datetime.now(UTC)
        round_, counts = _read_round(settings, run, resource, select, None, hook_factory)
    full = link is None or unusable is not None
    write_json_atomic(run.delta_link(resource), {"link": round_.delta_link, "full_read": full,
                                                 "received_at": received_at.isoformat(), "select": select})
    outcome = ExtractResult(resource, full, isinstance(unusable, DeltaLinkExpired), counts["objects"],
                            counts["removed"], counts["member_changes"], round_.pages, round_.requests, round_.retries,
                            None if age is None else round(age, 3),
                            unusable_link_recovered=isinstance(unusable, DeltaLinkRefused),
                            saved_link_problem=None if unusable is None else str(unusable))
    log.info("extracted %s: %s", resource, outcome.to_json())
    return outcome


def check_state_whole(settings: Settings, state: StateStore, run: RunFolder, resource: str, version: str | None,
                      full_resync: bool) -> None:
    """Saved delta links whose snapshot is gone are lost state: a delta folded onto nothing would make
    the plan delete every object the round did not mention. Stop (alert `state_lost`), unless the run
    reads everything anyway (`full_resync`; its plan then needs approval, see plan/stage.py)."""
    missing = state.missing_files()
    if not missing:
        return
    message = (f"the committed sync state {version} under {state.dir} is incomplete: {', '.join(missing)} missing. "
               f"Its delta links are not folded onto nothing: restore the files, or trigger a run with "
               f"full_resync=true (it reads the whole tenant; its plan then needs approval with approve_plan)")
    if full_resync:
        log.warning("%s; full resync requested: reading every %s", message, resource)
        return
    raise_alert(settings, "state_lost", message, run_id=run.run_id, resource=resource, missing=missing)
    raise StateLost(f"run {run.run_id}: {message}")


def _read_round(settings: Settings, run: RunFolder, resource: str, select: list[str], link: str | None,
                hook_factory) -> tuple[DeltaRound, dict[str, int]]:
    """One round into fresh Parquet files; the files appear only when the round completed."""
    objects = ParquetSink(run.staged(resource), object_schema(select))
    members = ParquetSink(run.staged("members"), MEMBER_SCHEMA) if resource == "groups" else None
    writer = TenantPageWriter(objects, members, select)

    async def go() -> DeltaRound:
        hook = hook_factory(settings)
        try:
            return await read_delta(hook, resource, select, link, writer.write, settings.tenant_conn_id,
                                    settings.graph_retry_budget_seconds, retry_attempts=settings.retry_attempts)
        finally:
            # Adapters are cached per conn id and bound to this event loop: close so that the next
            # asyncio.run() in this process builds a new one (DESIGN.md section 5).
            try:
                await hook.close()
            except Exception as exc:  # noqa: BLE001 - never hide the round's own outcome
                log.warning("closing the Graph hook failed: %s", type(exc).__name__)

    try:
        round_ = asyncio.run(go())
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return round_, writer.counts
