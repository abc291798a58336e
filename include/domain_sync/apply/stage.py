"""The apply stage: run the plan's change set against the domain and write the results.

Per-object failures fail the run only when they are more than `max_apply_failure_share` of the synced
objects, and only in a domain with at least `delete_share_min_objects` of them (the floor the plan's guards
use): below it one refused object would be a large share and fail run after run, while domain_sync.failing
already tracks and quarantines objects that fail again and again."""

from __future__ import annotations

import logging

from domain_sync.apply.runner import apply_changes
from domain_sync.apply.writer import ApplyAborted, DomainWriter
from domain_sync.context import StageContext
from domain_sync.domain import connect
from domain_sync.errors import PermanentError, StageInputMissing
from domain_sync.passwords.stores import open_sink
from domain_sync.records import ApplyResult, ChangeSet, Op
from domain_sync.runs import read_json, write_json_atomic
from domain_sync.state import APPLY_STOPPED, StateStore, check_state

log = logging.getLogger(__name__)


class ApplyFailed(PermanentError):
    """Too many objects failed permanently; the results file lists each with its LDAP code and is marked
    stopped, so commit refuses the run."""


def failure_share(failures: list[ApplyResult], change_set: ChangeSet, synced_in_domain: dict[str, int]) -> tuple[int, int]:
    """(failing objects, synced objects): the share is measured against the objects the sync owns in the
    domain after this plan (those the plan found, plus its creates), not against the plan's size, so a
    small incremental plan with one object the domain refuses does not stop the run."""
    failing = len({f.anchor or f.dn for f in failures})
    creates = sum(1 for c in change_set.changes if c.op == Op.CREATE)
    return failing, max(1, sum(synced_in_domain.values()) + creates)


class PlanNotApproved(PermanentError):
    """The plan is blocked (a guard, lost state) and its digest was not approved; nothing was written."""


def run(ctx: StageContext) -> dict:
    settings, run, dry_run = ctx.settings, ctx.run, ctx.flag("dry_run")
    plan = read_json(run.plan)
    if plan is None:
        raise StageInputMissing(f"run {run.run_id}: no plan; plan must run first")
    change_set = ChangeSet.from_json(plan)
    if dry_run:
        log.info("dry run: %d planned changes not applied (see %s)", len(change_set.changes),
                 run.plan_preview)
        summary = {"dry_run": True, "planned": change_set.counts, "total_writes": 0,
                   "plan_status": plan.get("status"), "digest": plan.get("digest")}
        write_json_atomic(run.apply_results, summary)
        return summary
    digest = plan.get("digest")
    # Approved: the plan stage found this run's approve_plan equal to the digest, and the run still says so
    # (a task cleared by hand, a plan file of another run).
    if change_set.blocked_reasons and not (plan.get("approved") and digest
                                           and str(ctx.params.get("approve_plan") or "").strip().lower() == digest):
        raise PlanNotApproved(f"run {run.run_id}: the plan is blocked ({'; '.join(change_set.blocked_reasons)}) and "
                              f"its digest was not approved; trigger a run with approve_plan={digest} to apply it")
    state = StateStore(settings.state_dir)
    check_state(state, run)  # no other run at work, the state extract read
    state.note_writes(run.run_id)  # the domain's synced objects come from this store's runs (plan: lost state)

    endpoint = ctx.endpoint
    sink = open_sink(settings)  # where initial passwords go (None: nobody learns them)

    def make_writer() -> DomainWriter:
        return DomainWriter(
            lambda: connect(endpoint, settings.ldap_timeout_seconds, run_id=run.run_id),
            settings.anchor_attribute,
            retry_budget_seconds=settings.ldap_retry_budget_seconds,
            retry_attempts=settings.retry_attempts,
            transient_codes=settings.transient_ldap_codes(),
            set_passwords=settings.initial_password == "random",
            sink=sink,
            initial_password_days=settings.initial_password_days,
        )

    try:
        result = apply_changes(make_writer, change_set.changes, connections=settings.apply_connections)
    except ApplyAborted as exc:
        # Keep what was written for the operator; the rerun converges (every write is idempotent).
        partial = exc.summary.to_json() if exc.summary else {}
        write_json_atomic(run.apply_results,
                          partial | {"dry_run": False, "planned": len(change_set.changes), "aborted": str(exc)})
        raise
    summary = result.to_json() | {"dry_run": False, "planned": len(change_set.changes),
                                  "connections": settings.apply_connections}
    failures = result.failures()
    log.info("apply: %d writes %s, statuses %s", summary["total_writes"], summary["writes"], summary["statuses"])
    failing, synced = failure_share(failures, change_set, plan.get("synced_in_domain") or {})
    if synced >= settings.delete_share_min_objects and failing / synced > settings.max_apply_failure_share:
        message = (f"{failing} of the {synced} synced objects failed (more than DOMAIN_SYNC_MAX_APPLY_FAILURE_SHARE="
                   f"{settings.max_apply_failure_share:g}); first: "
                   + "; ".join(f"{f.op} {f.kind} {f.anchor} ({f.dn}): LDAP code {f.result_code} {f.message}"
                               for f in failures[:5]))
        write_json_atomic(run.apply_results, summary | {APPLY_STOPPED: message})  # commit refuses the run
        raise ApplyFailed(message)
    write_json_atomic(run.apply_results, summary)
    if failures:
        log.warning("apply: %d of the %d synced objects failed; they are written again next run", failing, synced)
    return summary
