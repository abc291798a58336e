"""The apply stage: run the plan's change set against the domain and write the results.

Per-object failures fail the run only when they are more than `max_apply_failure_share` of the synced
objects, and only in a domain with at least `delete_share_min_objects` of them (the floor the plan's guards
use): below it one refused object would be a large share and fail run after run, while domain_sync.failing
already tracks and quarantines objects that fail again and again.

In the DAGs the writes are spread over mapped tasks (apply/batches.py): `prepare_batches` (task
apply_batches) checks the plan and cuts it into batches, `run_batch` writes one batch, and `run` with the
MERGE_PARAM merges the batches' results into the results file, as `run` alone writes it when it applies the
whole change set in one task."""

from __future__ import annotations

import logging
from collections.abc import Callable

from domain_sync.apply.batches import (
    cut_batches,
    failed_creates_before,
    merge_results,
    read_batch,
    read_batch_results,
    write_batch_results,
    write_batches,
)
from domain_sync.apply.phases import BATCH_PARAM, MERGE_PARAM
from domain_sync.apply.runner import apply_changes
from domain_sync.apply.writer import ApplyAborted, ApplySummary, DomainWriter
from domain_sync.context import StageContext
from domain_sync.domain import connect
from domain_sync.errors import PermanentError, StageInputMissing
from domain_sync.passwords.stores import open_sink
from domain_sync.records import ApplyResult, ChangeSet, Op
from domain_sync.runs import read_json, write_json_atomic
from domain_sync.state import APPLY_STOPPED, ApplyIncomplete, StateStore, check_state

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


def _read_plan(ctx: StageContext) -> tuple[dict, ChangeSet]:
    plan = read_json(ctx.run.plan)
    if plan is None:
        raise StageInputMissing(f"run {ctx.run.run_id}: no plan; plan must run first")
    return plan, ChangeSet.from_json(plan)


def _dry_run(ctx: StageContext, plan: dict, change_set: ChangeSet) -> dict:
    log.info("dry run: %d planned changes not applied (see %s)", len(change_set.changes), ctx.run.plan_preview)
    summary = {"dry_run": True, "planned": change_set.counts, "total_writes": 0,
               "plan_status": plan.get("status"), "digest": plan.get("digest")}
    write_json_atomic(ctx.run.apply_results, summary)
    return summary


def _check_may_write(ctx: StageContext, plan: dict, change_set: ChangeSet) -> StateStore:
    """Refuse a blocked plan whose digest was not approved, and a run that no longer holds the state."""
    digest = plan.get("digest")
    # Approved: the plan stage found this run's approve_plan equal to the digest, and the run still says so
    # (a task cleared by hand, a plan file of another run).
    if change_set.blocked_reasons and not (plan.get("approved") and digest
                                           and str(ctx.params.get("approve_plan") or "").strip().lower() == digest):
        raise PlanNotApproved(f"run {ctx.run.run_id}: the plan is blocked ({'; '.join(change_set.blocked_reasons)}) "
                              f"and its digest was not approved; trigger a run with approve_plan={digest} to apply it")
    state = StateStore(ctx.settings.state_dir)
    check_state(state, ctx.run)  # no other run at work, the state extract read
    return state


def _writers(ctx: StageContext) -> Callable[[], DomainWriter]:
    settings, run, endpoint = ctx.settings, ctx.run, ctx.endpoint
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

    return make_writer


def run(ctx: StageContext) -> dict:
    """The apply task: the whole change set in this task, or (MERGE_PARAM) the results of its batches."""
    settings, run = ctx.settings, ctx.run
    plan, change_set = _read_plan(ctx)
    if ctx.flag("dry_run"):
        return _dry_run(ctx, plan, change_set)
    state = _check_may_write(ctx, plan, change_set)
    extra: dict = {"connections": settings.apply_connections}
    if ctx.flag(MERGE_PARAM):
        result, problems, batches = merge_results(run, plan.get("digest"))
        if problems:
            why = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            write_json_atomic(run.apply_results, result.to_json() | {"dry_run": False,
                                                                     "planned": len(change_set.changes),
                                                                     "aborted": why})
            raise ApplyIncomplete(f"run {run.run_id}: the apply batches did not go through the plan: {why}")
        extra["batches"] = batches
    else:
        state.note_writes(run.run_id)  # the domain's synced objects come from this store's runs (plan: lost state)
        try:
            result = apply_changes(_writers(ctx), change_set.changes, connections=settings.apply_connections)
        except ApplyAborted as exc:
            # Keep what was written for the operator; the rerun converges (every write is idempotent).
            partial = exc.summary.to_json() if exc.summary else {}
            write_json_atomic(run.apply_results,
                              partial | {"dry_run": False, "planned": len(change_set.changes), "aborted": str(exc)})
            raise
    summary = result.to_json() | {"dry_run": False, "planned": len(change_set.changes)} | extra
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


def prepare_batches(ctx: StageContext) -> dict:
    """The apply_batches task: check the plan may be written (as apply does), then cut it into batches."""
    settings, run = ctx.settings, ctx.run
    plan, change_set = _read_plan(ctx)
    if ctx.flag("dry_run"):  # nothing to write: every phase stays empty, apply writes the dry run's summary
        write_batches(run, plan.get("digest"), change_set.changes, [])
        return {"dry_run": True, "planned": len(change_set.changes), "batches": {}}
    state = _check_may_write(ctx, plan, change_set)
    state.note_writes(run.run_id)  # before the first batch writes
    batches = cut_batches(change_set.changes, settings.apply_batch_size)
    index = write_batches(run, plan.get("digest"), change_set.changes, batches)
    counts = {phase: len(ids) for phase, ids in index["phases"].items() if ids}
    log.info("apply: %d changes in %d batches of at most %d: %s", len(change_set.changes), len(batches),
             settings.apply_batch_size, counts)
    return {"dry_run": False, "planned": len(change_set.changes), "batch_size": settings.apply_batch_size,
            "batches": counts}


def run_batch(ctx: StageContext) -> dict:
    """A mapped apply task: write one batch and its results. A retry picks up where the batch stopped: the
    changes that already have a result are not written again, and a batch with complete results writes
    nothing."""
    settings, run = ctx.settings, ctx.run
    batch = str(ctx.params.get(BATCH_PARAM) or "")
    if not batch:
        raise StageInputMissing(f"run {run.run_id}: no {BATCH_PARAM} param: which batch to apply")
    digest, phase, changes = read_batch(run, batch)
    previous = read_batch_results(run, batch, digest) or {}
    mine = {i for i, _ in changes}  # a batch cut again (another batch size) holds other changes
    done = {i: r for i, r in (previous.get("results") or {}).items() if i in mine}
    if previous.get("complete") and done.keys() == mine:
        log.info("apply batch %s: already applied (%d changes), nothing written again", batch, len(done))
        return _batch_summary(batch, done, reused=True)
    check_state(StateStore(settings.state_dir), run)
    todo = [(i, change) for i, change in changes if i not in done]
    if done:
        log.info("apply batch %s: %d of %d changes have a result from an earlier try; applying the other %d",
                 batch, len(done), len(changes), len(todo))
    try:
        result = apply_changes(_writers(ctx), [c for _, c in todo], connections=settings.apply_connections,
                               failed_creates=failed_creates_before(run, phase, digest))
    except ApplyAborted as exc:
        partial = exc.summary or ApplySummary()
        done |= {todo[j][0]: r for j, r in zip(partial.indexes, partial.results, strict=True)}
        write_batch_results(run, batch, digest, done, complete=False, aborted=str(exc))
        raise
    done |= {todo[j][0]: r for j, r in zip(result.indexes, result.results, strict=True)}
    write_batch_results(run, batch, digest, done, complete=True)
    return _batch_summary(batch, done)


def _batch_summary(batch: str, results: dict[int, ApplyResult], reused: bool = False) -> dict:
    """A batch's counts (the task's XCom and its line in the run summary); the results stay in its file."""
    summary = ApplySummary(list(results.values())).to_json()
    return {"batch": batch, "changes": len(results), "writes": {} if reused else summary["writes"],
            "total_writes": 0 if reused else summary["total_writes"], "statuses": summary["statuses"],
            "failed": len(summary["failed"]), **({"already_applied": True} if reused else {})}
