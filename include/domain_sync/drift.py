"""The drift report: what differs between the tenant and the domain, from a dry-run plan.

The drift check DAG reads the whole tenant and the domain (extract with `full_resync`, transform,
validate, plan, all with `dry_run`: nothing is written to the domain or the state) and classifies
the plan's change set and collisions file (plan/plan.json, plan/collisions.json):

- `changed_in_domain`: synced objects whose values, name or place differ from what the tenant says
  (changed by hand in the domain, or a tenant change not synced yet);
- `memberships_changed`: members of synced groups added or removed in the domain;
- `missing_in_domain`: tenant objects with no synced object in the domain (deleted by hand, or new);
- `not_in_tenant`: owned objects in the domain that the tenant no longer has (deleted there);
- `to_disable`: owned users the tenant has soft-deleted, disabled or put out of scope;
- `collisions`: tenant objects held back by a name or anchor collision with another object.

Written to drift/report.json and drift/report.txt in the run folder; a `drift_found` alert names the
counts when anything differs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from domain_sync.alerts import raise_alert
from domain_sync.context import StageContext
from domain_sync.dn import member_key
from domain_sync.errors import StageInputMissing
from domain_sync.records import Op
from domain_sync.runs import RunFolder
from domain_sync.storage import StoragePath, read_json, write_json_atomic, write_text

log = logging.getLogger(__name__)

CATEGORIES = ("changed_in_domain", "memberships_changed", "missing_in_domain", "not_in_tenant", "to_disable",
              "collisions")
CATEGORY_OF = {
    Op.MODIFY: "changed_in_domain", Op.RENAME: "changed_in_domain",
    Op.ADD_MEMBERS: "memberships_changed", Op.REMOVE_MEMBERS: "memberships_changed",
    Op.CREATE: "missing_in_domain", Op.DELETE: "not_in_tenant", Op.DISABLE: "to_disable",
}
SHOWN = 50  # objects listed per category in the text report


def drift_files(run: RunFolder) -> tuple[StoragePath, StoragePath]:
    folder = run.path / "drift"
    return folder / "report.json", folder / "report.txt"


def classify(plan: dict, collisions: list[dict]) -> dict[str, list[dict]]:
    """{category: [{"anchor", "kind", "dn", "what"}]}, one entry per object and category."""
    found: dict[str, dict[str, dict]] = defaultdict(dict)
    for change in plan.get("changes") or []:
        category = CATEGORY_OF.get(Op(change["op"]))
        if category is None or not change.get("anchor"):
            continue  # containers
        entry = found[category].setdefault(change["anchor"], {
            "anchor": change["anchor"], "kind": change.get("kind"), "dn": change.get("dn"), "what": []})
        if change["op"] in (Op.MODIFY, Op.DISABLE):
            entry["what"] += sorted(change.get("values") or {})
        elif change["op"] == Op.RENAME:
            entry["what"].append(f"name/place -> {change.get('new_dn')}")
        elif change["op"] in (Op.ADD_MEMBERS, Op.REMOVE_MEMBERS):
            entry["what"].append(f"{change['op']} {len(change.get('members') or [])}")
    for collision in collisions:
        found["collisions"].setdefault(f"{collision['anchor']}|{collision['attribute']}", {
            "anchor": collision["anchor"], "kind": collision.get("kind"), "dn": collision.get("local_dn"),
            "what": [f"{collision['attribute']} {collision.get('value')!r} held by {collision.get('local_dn')}"]})
    return {category: sorted(found[category].values(), key=lambda e: e["anchor"]) for category in CATEGORIES}


def corrected_drift(changes: Iterable[dict], changed_in_tenant: set[str], scope_changed: set[str] = frozenset(),
                    scope_members: set[str] = frozenset()) -> dict[str, int]:
    """Counts per category of a sync run's changes to objects the tenant did not change in the run's round:
    what was changed by hand in the domain (or a write that failed before), which the run puts back.
    `scope_changed`: ids (lower case) entering or leaving scope this run (a scope group's membership
    changed, so they are not in the round); `scope_members`: their member values (`member_key`), whose adds
    and removals in other groups come from the tenant too."""
    brought = set(changed_in_tenant) | set(scope_changed)
    plan = {"changes": []}
    for change in changes:
        if not change.get("anchor") or change["anchor"].lower() in brought:
            continue
        if change.get("members"):
            change = change | {"members": [m for m in change["members"] if member_key(m) not in scope_members]}
            if not change["members"]:
                continue
        plan["changes"].append(change)
    return {category: len(entries) for category, entries in classify(plan, []).items()
            if category != "collisions" and entries}


def render(run_id: str, report: dict[str, list[dict]], status: str | None) -> str:
    lines = [f"drift check of run {run_id} (plan status: {status})"]
    for category in CATEGORIES:
        entries = report[category]
        lines.append(f"{category}: {len(entries)}")
        for entry in entries[:SHOWN]:
            lines.append(f"  {entry['kind']} {entry['anchor']} {entry['dn']}: {', '.join(entry['what'])}".rstrip(": "))
        if len(entries) > SHOWN:
            lines.append(f"  ... and {len(entries) - SHOWN} more (drift/report.json)")
    return "\n".join(lines) + "\n"


def run(ctx: StageContext) -> dict:
    run = ctx.run
    plan = read_json(run.plan, None)
    if plan is None:
        raise StageInputMissing(f"run {run.run_id}: no plan; the drift report reads the plan of a dry run")
    collisions = read_json(run.collisions, []) or []
    report = classify(plan, collisions)
    counts = {category: len(entries) for category, entries in report.items()}
    json_file, text_file = drift_files(run)
    write_json_atomic(json_file, {"counts": counts, "plan_status": plan.get("status"), **report})
    write_text(text_file, render(run.run_id, report, plan.get("status")))
    total = sum(counts.values())
    log.info("drift: %s", counts)
    if total:
        raise_alert(ctx.settings, "drift_found",
                    f"run {run.run_id}: the domain differs from the tenant: "
                    + ", ".join(f"{n} {category.replace('_', ' ')}" for category, n in counts.items() if n)
                    + f"; see {text_file}", run_id=run.run_id, counts=counts)
    return {"counts": counts, "drift": total, "report_file": str(text_file)}
