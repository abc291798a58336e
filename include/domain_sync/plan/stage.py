"""The plan stage: observe the domain, diff, guard, and write the plan files of the run."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pandas as pd

from domain_sync.config import Settings, SettingsError
from domain_sync.context import StageContext
from domain_sync.dn import normalize_dn
from domain_sync.domain import connect
from domain_sync.errors import PermanentError, StageInputMissing
from domain_sync.mapping import load_mapping
from domain_sync.plan.changeset import PlanInputs, plan_changes
from domain_sync.plan.guards import deletion_guard
from domain_sync.plan.observed import observe_domain
from domain_sync.plan.preview import render_preview
from domain_sync.records import GROUP, USER
from domain_sync.runs import read_json, write_json_atomic

log = logging.getLogger(__name__)


class PlanBlocked(PermanentError):
    """The plan exceeds the deletion guard; nothing was written. Approve the run to go on."""


def container_dn(settings: Settings, base_dn: str) -> str:
    return f"{settings.container},{base_dn}" if settings.container else base_dn


def search_base_dn(settings: Settings, base_dn: str) -> str:
    """Where synced objects are looked up; it must hold the container, or objects synced there
    would not be found by the next run and would be created again."""
    search_base = f"{settings.search_base},{base_dn}" if settings.search_base else base_dn
    container = normalize_dn(container_dn(settings, base_dn))
    key = normalize_dn(search_base)
    if container != key and not container.endswith("," + key):
        raise SettingsError(f"the container {settings.container!r} is not inside the search base "
                           f"{settings.search_base!r} (DOMAIN_SYNC_CONTAINER, DOMAIN_SYNC_SEARCH_BASE)")
    return search_base


def run(ctx: StageContext) -> dict:
    settings, run, endpoint = ctx.settings, ctx.run, ctx.endpoint
    approve_deletions = ctx.flag("approve_deletions")
    mapping = load_mapping(settings.mapping_file)
    quarantine = read_json(run.quarantine, None)
    if quarantine is None:
        raise StageInputMissing(f"run {run.run_id}: no validation output; validate must run first")
    inputs = PlanInputs(
        users=pd.read_parquet(run.records("users")),
        groups=pd.read_parquet(run.records("groups")),
        members=pd.read_parquet(run.records("members")),
        quarantined={q["anchor"] for q in quarantine if q.get("anchor")},
        out_of_scope=set((read_json(run.records_notes, {}) or {}).get("users_out_of_scope") or []),
    )
    conn = connect(endpoint, settings.ldap_timeout_seconds)
    try:
        observed = observe_domain(
            conn, endpoint.base_dn, container_dn(settings, endpoint.base_dn), settings.anchor_attribute,
            sorted(set(mapping.targets(USER)) | set(mapping.targets(GROUP))),
            search_base=search_base_dn(settings, endpoint.base_dn),
        )
    finally:
        conn.unbind()
    change_set, collisions = plan_changes(inputs, observed, settings.anchor_attribute,
                                          set_initial_password=settings.initial_password == "random")
    change_set.quarantined = len(inputs.quarantined) + sum(c.attribute == "userPrincipalName" for c in collisions)
    synced = {kind: sum(1 for o in observed.objects.values() if o.kind == kind) for kind in (USER, GROUP)}
    change_set.blocked_reasons = deletion_guard(
        change_set, synced, settings.max_deletes, settings.max_delete_share, settings.delete_share_min_objects
    )
    if collisions:
        write_json_atomic(run.collisions, [asdict(c) for c in collisions])
        for c in collisions:
            log.warning("collision: %s", c.reason())
    write_json_atomic(run.plan, change_set.to_json() | {"approved": approve_deletions}, compact=True)
    run.plan_preview.write_text(
        render_preview(change_set, header=f"plan of run {run.run_id}"), encoding="utf-8")
    summary = {
        "counts": change_set.counts,
        "changes": len(change_set.changes),
        "collisions": len(collisions),
        "blocked_reasons": change_set.blocked_reasons,
        "approved": approve_deletions,
        "synced_in_domain": synced,
        "plan_file": str(run.plan_preview),
    }
    log.info("plan: %d changes %s", len(change_set.changes), change_set.counts)
    if change_set.blocked_reasons and not approve_deletions:
        raise PlanBlocked(
            "deletion guard stopped the run before any write: " + "; ".join(change_set.blocked_reasons)
            + f". Review {summary['plan_file']} and trigger the run again with approve_deletions=true."
        )
    return summary
