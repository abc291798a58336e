"""A run's summary for people: counts of what the run created, updated and deleted.

The report stage (`run`) logs it and raises the alerts a person must see (domain_sync.run_alerts);
`python -m domain_sync.summary [DATA_DIR]` prints the latest run's summary.
"""

from __future__ import annotations

import logging
import sys

from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.run_alerts import raise_run_alerts
from domain_sync.runs import RunFolder, prune_runs, runs_by_time
from domain_sync.storage import StoragePath, location

log = logging.getLogger(__name__)

ACTIONS = {
    "create": "created", "modify": "updated", "rename": "renamed/moved", "disable": "disabled",
    "delete": "deleted", "add_members": "memberships added", "remove_members": "memberships removed",
}


def latest_run(data_dir: StoragePath) -> StoragePath | None:
    return next((run.path for run in runs_by_time(data_dir / "runs", newest_first=True) if run.has_summary), None)


def format_summary(summary: dict) -> str:
    lines = [f"run {summary.get('run_id')}"]
    transform = summary.get("transform") or {}
    if transform:
        lines.append(f"  tenant: {transform.get('tenant_users')} users, {transform.get('tenant_groups')} groups, "
                     f"{transform.get('tenant_memberships')} memberships")
    for resource in ("users", "groups"):
        extract = summary.get(f"extract_{resource}") or {}
        if "full_read" not in extract:
            continue
        read = "full read" if extract["full_read"] else "delta round"
        if extract.get("expired_link_recovered"):
            read += ", the saved delta link had expired"
        elif extract.get("unusable_link_recovered"):
            read += ", Graph refused the saved delta link"
        lines.append(f"  {resource} extract: {extract.get('objects')} objects ({read})")
    apply = summary.get("apply") or {}
    writes = apply.get("writes") or {}
    for kind in ("user", "group"):
        parts = [f"{writes.get(f'{kind}.{op}', 0)} {label}" for op, label in ACTIONS.items()
                 if writes.get(f"{kind}.{op}")]
        lines.append(f"  {kind}s: " + (", ".join(parts) if parts else "no change"))
    if apply.get("dry_run"):
        lines.append("  dry run: nothing written")
    statuses = apply.get("statuses") or {}
    if statuses:
        lines.append("  changes: " + ", ".join(f"{v} {k}" for k, v in sorted(statuses.items())))
    credentials = summary.get("credentials") or {}
    if credentials.get("source") not in (None, "none"):
        c = credentials.get("password_changes") or {}
        lines.append(f"  password changes ({credentials['source']}): {c.get('set', 0)} set, "
                     f"{c.get('skipped_stale', 0)} skipped as stale, {c.get('failed', 0)} failed, "
                     f"{c.get('refused', 0)} refused by the domain, {c.get('replayed', 0)} replays, "
                     f"{c.get('waiting', 0)} waiting for their user, {c.get('duplicate_anchor', 0)} held on a "
                     f"duplicate anchor, {c.get('set_aside', 0)} set aside")
    quarantined = sum(((summary.get("validate") or {}).get("quarantined") or {}).values())
    collisions = (summary.get("plan") or {}).get("collisions", 0)
    lines.append(f"  quarantined: {quarantined} by validation; collisions (a name another object holds, an anchor on "
                 f"several objects): {collisions}")
    failed = apply.get("failed")
    if isinstance(failed, list) and failed:
        lines.append(f"  failed objects: {len({f.get('anchor') or f.get('dn') for f in failed})} (written again next "
                     f"run, quarantined after failing run after run)")
    held = (summary.get("plan") or {}).get("held_failing") or {}
    if held.get("count") or held.get("released"):
        lines.append(f"  held for failing run after run: {held.get('count', 0)}, released this run: "
                     f"{len(held.get('released') or [])}")
    others = (summary.get("transform") or {}).get("member_types_not_synced")
    if others:
        lines.append("  group members that are neither users nor groups (not members in the domain): "
                     + ", ".join(f"{n} {kind}" for kind, n in sorted(others.items())))
    drift = (summary.get("plan") or {}).get("drift_corrected")
    if drift:
        lines.append("  drift put back (the domain differed for objects the tenant did not change): "
                     + ", ".join(f"{n} {category.replace('_', ' ')}" for category, n in sorted(drift.items())))
    for stage, result in summary.items():
        if isinstance(result, dict) and isinstance(result.get("failed"), str):  # the stage itself failed
            lines.append(f"  FAILED at {stage}: {result['failed']}")
    return "\n".join(lines)


def run(ctx: StageContext) -> dict:
    """The report stage: the run summary's counts, and alerts for what needs a person's eye."""
    settings, run = ctx.settings, ctx.run
    summary = run.summary()
    quarantined = sum((summary.get("validate") or {}).get("quarantined", {}).values())
    collisions = (summary.get("plan") or {}).get("collisions", 0)
    # Expired delta links, a blocked plan, new quarantined objects, objects failing run after run.
    raise_run_alerts(settings, run)
    applied = summary.get("apply") or {}
    counts = {
        "writes": applied.get("writes", {}),
        "total_writes": applied.get("total_writes", 0),
        "planned": (summary.get("plan") or {}).get("counts", {}),
        "quarantined": quarantined,
        "collisions": collisions,
        "password_changes": (summary.get("credentials") or {}).get("password_changes", {}),
        "run_folder": str(run.path),
    }
    log.info("run %s summary: %s", run.run_id, counts)
    log.info("%s", format_summary(summary))
    counts["runs_pruned"] = len(prune_runs(run, settings.keep_runs, settings.keep_run_days))
    return counts


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    data_dir = location(argv[0], settings.data_conn_id) if argv else settings.data_root
    run = latest_run(data_dir)
    if run is None:
        print(f"no run found under {data_dir}")
        return 1
    print(format_summary(RunFolder(data_dir / "runs", run.name).summary()))
    print(f"  files: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
