"""The plan stage: observe the domain, diff, guard, and write the plan files of the run.

A plan over a guard (plan/guards.py), or a plan made while the state store holds no committed
snapshot although the domain holds synced objects (lost state: a full reconcile), is blocked: it
stops before any write, unless the run was triggered with `approve_plan=<its digest>`. The digest
is in plan/plan.txt, in the error and in the run summary; a dry run of a blocked plan succeeds and
reports status "blocked" with the digest.

Objects quarantined for failing run after run (domain_sync.failing) are held like the ones
validation quarantined: no write goes to them, their memberships are kept. plan.json lists them
(`held_failing`) and carries `synced_in_domain`, which apply measures its failure share against.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from domain_sync.alerts import raise_alert
from domain_sync.columns import lowered
from domain_sync.config import Settings, SettingsError
from domain_sync.context import StageContext
from domain_sync.dn import guid_dn, is_within, member_key
from domain_sync.domain import connect
from domain_sync.drift import corrected_drift
from domain_sync.errors import PermanentError, StageInputMissing
from domain_sync.failing import HELD_KEY, failing_objects, held_for_failing, staged_ids
from domain_sync.mapping import load_mapping
from domain_sync.plan.changeset import PlanInputs
from domain_sync.plan.guards import OwnershipSigns, approval_status, approved_digest, guard_reasons, plan_digest
from domain_sync.plan.incremental import (
    ChangeInputs,
    DomainIndex,
    PlanSetting,
    full_reason,
    make_plan,
    settings_fingerprint,
)
from domain_sync.plan.observed import ObservedDomain
from domain_sync.plan.preview import preview_lines
from domain_sync.plan.restrict import chosen_objects, restrict_to_objects
from domain_sync.records import GROUP, USER, Change, Op
from domain_sync.runs import RunFolder
from domain_sync.state import StateStore
from domain_sync.storage import JsonArray, parquet_rows, read_json, read_parquet, write_json_atomic, write_lines

log = logging.getLogger(__name__)

SHOWN_ANCHORS = 50  # anchors listed in the summary (plan.json lists every held one)


class PlanBlocked(PermanentError):
    """The plan exceeds a guard (or the state is lost); nothing was written. Approve its digest to go on."""


def container_dn(settings: Settings, base_dn: str) -> str:
    return f"{settings.container},{base_dn}" if settings.container else base_dn


def search_base_dn(settings: Settings, base_dn: str) -> str:
    """Where synced objects are looked up; it must hold the container, or objects synced there
    would not be found by the next run and would be created again."""
    container = container_dn(settings, base_dn)
    search_base = f"{settings.search_base},{base_dn}" if settings.search_base else container
    if not is_within(container, search_base):
        raise SettingsError(f"the container {settings.container!r} is not inside the search base "
                           f"{settings.search_base!r} (DOMAIN_SYNC_CONTAINER, DOMAIN_SYNC_SEARCH_BASE)")
    return search_base


def run(ctx: StageContext) -> dict:
    settings, run, endpoint = ctx.settings, ctx.run, ctx.endpoint
    approved = approved_digest(ctx.params)
    mapping = load_mapping(settings.mapping_file)
    quarantine = read_json(run.quarantine, None)
    if quarantine is None:
        raise StageInputMissing(f"run {run.run_id}: no validation output; validate must run first")
    # Objects failing run after run are held like quarantined ones, until released (domain_sync.failing).
    changed_in_tenant = staged_ids(run)  # the objects this round brought (read once: failing objects, drift)
    notes = read_json(run.records_notes, {}) or {}
    held_failing, released = held_for_failing(settings, run, changed_in_tenant, full_resync=ctx.flag("full_resync"))
    inputs = PlanInputs(
        users=read_parquet(run.records("users")),
        groups=read_parquet(run.records("groups")),
        members=read_parquet(run.records("members")),
        quarantined={q["anchor"] for q in quarantine if q.get("anchor")} | held_failing,
        out_of_scope=set(notes.get("users_out_of_scope") or []),
    )
    chosen = chosen_objects(ctx.params)
    state = StateStore(settings.state_dir)
    index = DomainIndex.committed(state)
    fingerprint = settings_fingerprint(settings, endpoint.base_dn, ctx.owner_marker, run.target_schema)
    full_because = full_reason(mode_setting=settings.plan_mode, full_resync=ctx.flag("full_resync"),
                               chosen=chosen is not None, links=run.delta_links(), index=index,
                               fingerprint=fingerprint)
    change_inputs = None if full_because else ChangeInputs(
        tenant=changed_in_tenant, scope_changed={str(i).lower() for i in notes.get("scope_changed") or []},
        failing={a.lower() for a in failing_objects(settings)} - {a.lower() for a in held_failing},
        records=set(lowered(inputs.users["anchor"])) | set(lowered(inputs.groups["anchor"])),
        quarantined={a.lower() for a in inputs.quarantined}, out_of_scope={a.lower() for a in inputs.out_of_scope},
        index=index.frame, meta=index.meta,
        by_members={str(g).lower(): {str(m).lower() for m in members}
                    for g, members in (notes.get("groups_changed_by_members") or {}).items()})
    where = PlanSetting(endpoint.base_dn, container_dn(settings, endpoint.base_dn),
                        search_base_dn(settings, endpoint.base_dn), settings.anchor_attribute,
                        sorted(set(mapping.targets(USER)) | set(mapping.targets(GROUP))), settings.owner_attribute,
                        ctx.owner_marker, settings.initial_password == "random")
    planned = make_plan(lambda: connect(endpoint, settings.ldap_timeout_seconds, run_id=run.run_id), where, inputs,
                        full_because=full_because, index=index, fingerprint=fingerprint, change_inputs=change_inputs)
    change_set, collisions, observed = planned.change_set, planned.collisions, planned.observed
    if chosen is not None:  # the on-demand sync of chosen objects (plan/restrict.py)
        change_set = restrict_to_objects(change_set, chosen)
        collisions = [c for c in collisions if c.anchor.lower() in chosen]
    change_set.quarantined = len(inputs.quarantined) + sum(c.attribute == "userPrincipalName" for c in collisions)
    synced = planned.synced_counts()
    group_members = planned.group_members()
    signs = OwnershipSigns(unmarked=planned.index.meta["unmarked"],
                           observed=len(planned.index.frame) + len(observed.duplicate_anchors)
                           + len(observed.unreadable_owned),
                           committed=committed_objects(state),
                           anchor_attribute=settings.anchor_attribute, owner_attribute=settings.owner_attribute,
                           search_base=where.search_base, outside=len(observed.owned_outside))
    change_set.blocked_reasons = lost_state_reasons(ctx, synced) + guard_reasons(change_set, synced, group_members,
                                                                                 settings, signs)
    digest = plan_digest(change_set)
    status = approval_status(change_set.blocked_reasons, digest, approved)
    if collisions:
        write_json_atomic(run.collisions, [asdict(c) for c in collisions])
        for c in collisions:
            log.warning("collision: %s", c.reason())
    # The changes are written one by one: a first sync's plan is hundreds of MB of JSON.
    write_json_atomic(run.plan, change_set.head_json() | {
        "digest": digest, "status": status, "approved": status == "approved", "synced_in_domain": synced,
        HELD_KEY: sorted(held_failing), "plan_mode": planned.summary(),
        "changes": JsonArray(c.to_json() for c in change_set.changes)}, compact=True)
    if chosen is None:
        # An on-demand run commits the round's other changes unwritten: no index, so the next plan is a full one.
        planned.index.after(change_set.changes).write(run)
    drift = drift_of_round(run, change_set.changes, observed, changed_in_tenant, notes)
    if drift:
        log.warning("drift: the domain differed from the tenant for objects the tenant did not change (changed by "
                    "hand in the domain, or an earlier write that failed); this run puts them back: %s", drift)
    if held_failing or released:
        log.warning("%d objects held for failing run after run (%s); %d released (tenant change or full resync): %s",
                    len(held_failing), sorted(held_failing)[:20], len(released), sorted(released)[:20])
    write_lines(run.plan_preview, preview_lines(change_set, header=preview_header(run, digest, status)))
    summary = {
        "counts": change_set.counts,
        "changes": len(change_set.changes),
        "collisions": len(collisions),
        "blocked_reasons": change_set.blocked_reasons,
        "status": status,
        "digest": digest,
        "approved_plan": approved,
        "synced_in_domain": synced,
        "plan_mode": planned.summary(),
        "drift_corrected": drift,
        "held_failing": {"count": len(held_failing), "anchors": sorted(held_failing)[:SHOWN_ANCHORS],
                         "released": sorted(released)[:SHOWN_ANCHORS]},
        # Anchored objects without this sync's marker (never touched) and DNs that could not be read (skipped).
        "unmarked_in_domain": observed.unmarked,
        "unreadable_dns": len(observed.unreadable),
        "plan_file": str(run.plan_preview),
    }
    log.info("plan %s: %d changes %s (%s, %s plan%s)", digest, len(change_set.changes), change_set.counts, status,
             planned.mode, f": {planned.reason}" if planned.reason else "")
    if status == "blocked":
        message = blocked_message(change_set.blocked_reasons, digest, approved, summary["plan_file"], ctx.params)
        if ctx.flag("dry_run"):
            log.warning("dry run: %s", message)
            return summary
        raise PlanBlocked(message)
    return summary


def committed_objects(state: StateStore) -> int:
    """Tenant users and groups in the committed snapshot (0 without one)."""
    paths = [state.snapshot(frame) for frame in ("users", "groups")]
    return sum(parquet_rows(p) for p in paths if p is not None)


def drift_of_round(run: RunFolder, changes: list[Change], observed: ObservedDomain, changed_in_tenant: set[str],
                   notes: dict) -> dict[str, int] | None:
    """The plan's changes to objects this round did not bring from the tenant, by drift category (None after
    a full read of either resource: every object is in such a round). Objects entering or leaving scope this
    run (transform's records notes) came from the tenant too, and so did their memberships."""
    links = run.delta_links()
    if not links or any(entry.get("full_read") for entry in links.values()):
        return None
    scope_changed = {str(i).lower() for i in notes.get("scope_changed") or []}
    members = set()
    for anchor, obj in observed.objects.items():
        if anchor.lower() in scope_changed:
            members |= {member_key(obj.dn)} | ({member_key(guid_dn(obj.guid))} if obj.guid else set())
    members |= {member_key(c.dn) for c in changes if c.op == Op.CREATE and str(c.anchor).lower() in scope_changed}
    return corrected_drift((c.to_json() for c in changes), changed_in_tenant, scope_changed, members)


def lost_state_reasons(ctx: StageContext, synced: dict[str, int]) -> list[str]:
    """No committed snapshot while the domain holds synced objects: the state was lost (a new data
    folder, a lost volume), so this run reconciles everything against the tenant and needs approval.
    Not lost: a state store whose own runs wrote (apply notes it) and never committed (a first sync
    that failed part way)."""
    state = StateStore(ctx.settings.state_dir)
    total = sum(synced.values())
    if not total or state.has_snapshot():
        return []
    missing = state.missing_files()
    writes = state.last_writes()
    if writes and not missing:
        # Nothing committed yet, but this store's own runs wrote: a first sync whose apply did not finish.
        log.info("no committed state yet; the %d synced objects come from run %s, which applied and did not "
                 "commit", total, writes.get("run_id"))
        return []
    what = f"{', '.join(missing)} missing" if missing else "nothing committed"
    reason = (f"the state store holds no committed snapshot ({what}) while the domain holds {total} synced objects "
              f"({synced.get(USER, 0)} users, {synced.get(GROUP, 0)} groups): lost state, this run is a full "
              f"reconcile")
    raise_alert(ctx.settings, "state_lost", f"run {ctx.run.run_id}: {reason}; it needs approval",
                run_id=ctx.run.run_id, synced_in_domain=synced, missing=missing)
    return [reason]


def preview_header(run: RunFolder, digest: str, status: str) -> str:
    lines = [f"plan of run {run.run_id}", f"digest: {digest}", f"status: {status}"]
    if status == "blocked":
        lines.append(f"to approve exactly this plan, trigger the DAG with approve_plan={digest}")
    return "\n".join(lines)


def blocked_message(reasons: list[str], digest: str, approved: str | None, plan_file: str, params: dict) -> str:
    message = (f"the plan was stopped before any write: {'; '.join(reasons)}. Review {plan_file} and, to apply "
               f"exactly this plan, trigger the run again with approve_plan={digest}")
    if approved:
        message += (f" (approve_plan={approved} approved another plan: the changes differ from the ones read "
                    f"then)")
    if params.get("approve_deletions"):
        message += " (approve_deletions is no longer accepted: a plan is approved by its digest)"
    return message + "."
