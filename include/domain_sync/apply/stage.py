"""The apply stage: run the plan's change set against the domain and write the results."""

from __future__ import annotations

import logging

from domain_sync.apply.runner import apply_changes
from domain_sync.apply.writer import ApplyAborted, DomainWriter
from domain_sync.config import Settings
from domain_sync.domain import DomainEndpoint, connect
from domain_sync.records import ChangeSet
from domain_sync.runs import RunFolder, read_json, write_json_atomic

log = logging.getLogger(__name__)


class ApplyFailed(RuntimeError):
    """Too many changes failed permanently; the results file lists each with its LDAP code."""


def apply_run(settings: Settings, run: RunFolder, endpoint: DomainEndpoint, dry_run: bool = False) -> dict:
    plan = read_json(run.file("plan", "plan.json"))
    if plan is None:
        raise RuntimeError(f"run {run.run_id}: no plan; plan must run first")
    change_set = ChangeSet.from_json(plan)
    if change_set.blocked_reasons and not plan.get("approved"):
        raise RuntimeError(f"run {run.run_id}: the plan is blocked by the deletion guard and not approved")
    if dry_run:
        log.info("dry run: %d planned changes not applied (see %s)", len(change_set.changes),
                 run.file("plan", "plan.txt"))
        summary = {"dry_run": True, "planned": change_set.counts, "total_writes": 0}
        write_json_atomic(run.file("apply", "results.json"), summary)
        return summary

    def make_writer() -> DomainWriter:
        return DomainWriter(
            lambda: connect(endpoint, settings.ldap_timeout_seconds),
            settings.anchor_attribute,
            retry_budget_seconds=settings.ldap_retry_budget_seconds,
            set_passwords=settings.initial_password == "random",
        )

    try:
        result = apply_changes(make_writer, change_set.changes, connections=settings.apply_connections)
    except ApplyAborted as exc:
        # Keep what was written for the operator; the rerun converges (every write is idempotent).
        partial = exc.summary.to_json() if exc.summary else {}
        write_json_atomic(run.file("apply", "results.json"),
                          partial | {"dry_run": False, "planned": len(change_set.changes), "aborted": str(exc)})
        raise
    summary = result.to_json() | {"dry_run": False, "planned": len(change_set.changes),
                                  "connections": settings.apply_connections}
    write_json_atomic(run.file("apply", "results.json"), summary)
    failures = result.failures()
    log.info("apply: %d writes %s, statuses %s", summary["total_writes"], summary["writes"], summary["statuses"])
    if change_set.changes and len(failures) / len(change_set.changes) > settings.max_apply_failure_share:
        raise ApplyFailed(
            f"{len(failures)} of {len(change_set.changes)} changes failed; first: "
            + "; ".join(f"{f.op} {f.kind} {f.anchor} ({f.dn}): LDAP code {f.result_code} {f.message}"
                        for f in failures[:5])
        )
    return summary
