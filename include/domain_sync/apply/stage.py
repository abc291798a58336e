"""The apply stage: run the plan's change set against the domain and write the results."""

from __future__ import annotations

import logging

from domain_sync.apply.writer import DomainWriter, apply_changes
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
    writer = DomainWriter(
        lambda: connect(endpoint, settings.ldap_timeout_seconds),
        settings.anchor_attribute,
        set_passwords=settings.initial_password == "random",
    )
    result = apply_changes(writer, change_set.changes)
    summary = result.to_json() | {"dry_run": False, "planned": len(change_set.changes)}
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
