"""Run-level alerts: what a run found that a person must see, raised once per run.

Conditions, read from the run's summary.json and files:
- `plan_blocked`: the plan was stopped by a guard or lost state (a failed plan task, or a dry run
  reporting "blocked"), with its digest to approve;
- `objects_quarantined`: objects quarantined by validation, and the plan's collisions (a userPrincipalName
  another object holds: quarantined; a sAMAccountName a local object holds: another name given; an
  anchor on several synced objects: all of them held), that were not in the last alert (an object that
  leaves the quarantine and comes back is new again);
- `delta_link_expired`: a saved delta link Graph no longer knew; `delta_link_unusable`: a saved delta
  link whose token Graph refused (garbled, truncated, of another query). The extract read the whole
  tenant instead; one alert per resource, from the extract's result, never from error text;
- `validation_stopped`: validation found systemic problems and stopped the run;
- `object_failing`: an object whose change failed in `DOMAIN_SYNC_OBJECT_FAILURE_RUNS` (3) runs in a row,
  now quarantined: held by the plan until released (domain_sync.failing).

Lost state, a recovered state lock and TLS validation off are raised where they happen (extract,
plan, the domain connection). `raise_run_alerts` runs at the end of the report stage and again in
the `raise_alerts` teardown of every sync DAG, which runs whatever failed before it; the per-run
alert ledger (domain_sync.alerts, <data dir>/alerting/ledger.json) makes the second call raise only
what the first did not.
"""

from __future__ import annotations

import logging
from typing import Any

from domain_sync.alerts import alerting_dir, raise_alert, raised_for_run, record_raised
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.failing import release_advice, track_failures
from domain_sync.ops_settings import OpsSettings
from domain_sync.runs import RunFolder
from domain_sync.storage import is_folder, read_json, update_document

log = logging.getLogger(__name__)

LEDGER_RUNS = 200  # runs remembered in the ledger


def _failed(summary: dict, stage: str) -> str:
    return str((summary.get(stage) or {}).get("failed") or "")


def conditions(settings: Settings, ops: OpsSettings, run: RunFolder, summary: dict) -> list[tuple[str, str, dict]]:
    """(key, kind, alert fields) of each condition of the run that is not about single objects."""
    found: list[tuple[str, str, dict]] = []
    plan = summary.get("plan") or {}
    plan_failed = _failed(summary, "plan")
    if plan.get("status") == "blocked" or plan_failed.startswith("PlanBlocked"):
        # A failed plan task left no summary of its own; the plan file it wrote before stopping names the
        # reasons and the digest to approve.
        written = read_json(run.plan, {}) or {}
        reasons = plan.get("blocked_reasons") or written.get("blocked_reasons") or [plan_failed.partition(": ")[2]]
        digest = plan.get("digest") or written.get("digest")
        found.append(("plan_blocked", "plan_blocked",
                      {"message": f"run {run.run_id}: the plan was stopped before any write: {'; '.join(reasons)}"
                                  + (f". Read {run.plan_preview}; to apply exactly this plan, trigger the run "
                                     f"again with approve_plan={digest}" if digest else ""),
                       "digest": digest, "plan_file": plan.get("plan_file") or str(run.plan_preview)}))
    for stage in ("extract_users", "extract_groups"):
        resource = stage.split("_")[1]
        result = summary.get(stage) or {}
        read_instead = (f"run {run.run_id} read every {resource[:-1]} instead and reconciled fully; once a run "
                        f"commits, the next one is incremental again")
        if result.get("expired_link_recovered"):
            found.append((f"delta_link_expired:{resource}", "delta_link_expired",
                          {"message": f"the saved {resource} delta link had expired "
                                      f"({result.get('saved_link_problem') or 'unknown to Graph'}); {read_instead}. "
                                      f"Nothing to do unless it recurs: Graph forgets links after 7 days, so check "
                                      f"that the sync runs and commits (not paused, not failing)",
                           "resource": resource}))
        if result.get("unusable_link_recovered"):
            found.append((f"delta_link_unusable:{resource}", "delta_link_unusable",
                          {"message": f"the saved {resource} delta link was unusable "
                                      f"({result.get('saved_link_problem')}); {read_instead}. Find what changed "
                                      f"the sync state under {settings.state_dir} (an edit, a copy from another "
                                      f"tenant or query, a restored backup): a link Graph refuses costs a full "
                                      f"read of the tenant each time",
                           "resource": resource}))
    validate_failed = _failed(summary, "validate")
    if validate_failed:
        found.append(("validation_stopped", "validation_stopped",
                      {"message": f"run {run.run_id}: validation stopped the run: {validate_failed[:500]}"}))
    return found


def _new_quarantine(settings: Settings, run: RunFolder) -> tuple[list[dict], list[dict], int, int]:
    """(new quarantine entries, new collisions, all quarantined, all collisions) of the run, against the last
    alert; the record of what was alerted is updated to what the run holds now."""
    quarantine = read_json(run.quarantine, None)
    has_plan = is_folder(run.path / "plan")
    collisions = read_json(run.collisions, None) if has_plan else None
    planned = collisions is not None or (has_plan and run.plan.exists())
    collisions = (collisions or []) if planned else collisions
    new_q: list[dict] = []
    new_c: list[dict] = []

    def note(before: dict | None) -> dict:
        seen = dict(before or {})
        new_q[:], new_c[:] = [], []
        if quarantine is not None:
            known = set(seen.get("quarantine") or [])
            now = {q.get("anchor") for q in quarantine if q.get("anchor")}
            new_q[:] = [q for q in quarantine if q.get("anchor") and q["anchor"] not in known]
            seen["quarantine"] = sorted(now)
        if planned:
            known = set(seen.get("collisions") or [])
            keys = {f"{c['anchor']}|{c['attribute']}": c for c in collisions}
            new_c[:] = [c for key, c in keys.items() if key not in known]
            seen["collisions"] = sorted(keys)
        return seen

    update_document(alerting_dir(settings) / "objects.json", note)
    total_q = len({q.get("anchor") for q in quarantine or [] if q.get("anchor")})
    return new_q, new_c, total_q, len(collisions or [])


# What each kind of collision in the plan's collisions file is, by its attribute (plan/changeset.py).
_COLLISION_KINDS = {
    "userPrincipalName": "quarantined because another object holds their userPrincipalName",
    "sAMAccountName": "given another sAMAccountName because a local object holds theirs",
    "searchBase": "held because their object is outside the search base (moved there by hand?)",
    "dn": "held because their object's DN cannot be read",
}
_DUPLICATE_ANCHOR = "tenant objects whose anchor is on several synced objects (all of them held, none written)"


def _collision_kind(collision: dict, anchor_attribute: str) -> str:
    attribute = str(collision.get("attribute") or "")
    if attribute.lower() == anchor_attribute.lower():
        return _DUPLICATE_ANCHOR
    return _COLLISION_KINDS.get(attribute, f"in collision on {attribute}")


def _collision_counts(collisions: list[dict], anchor_attribute: str) -> str:
    """", N objects <what happened to them>" for each kind of collision among `collisions`."""
    counts: dict[str, int] = {}
    for c in collisions:
        kind = _collision_kind(c, anchor_attribute)
        counts[kind] = counts.get(kind, 0) + 1
    return "".join(f", {n} {kind}" for kind, n in counts.items())


def _collision_text(collision: dict, anchor_attribute: str) -> str:
    if _collision_kind(collision, anchor_attribute) == _DUPLICATE_ANCHOR:
        return f"{collision['anchor']}: anchor ({collision['attribute']}) on {collision['local_dn']}"
    return f"{collision['anchor']} {collision['attribute']}={collision['value']} held by {collision['local_dn']}"


def raise_run_alerts(settings: Settings, run: RunFolder, ops: OpsSettings | None = None) -> dict:
    """Raise the run's alerts that were not raised for it yet; returns {"raised": [kinds]}."""
    ops = ops or OpsSettings.from_env()
    summary = run.summary()
    done = raised_for_run(settings, run.run_id)
    raised: list[str] = []
    for key, kind, fields in conditions(settings, ops, run, summary):
        if key in done:
            continue
        message = fields.pop("message")
        raise_alert(settings, kind, message, run_id=run.run_id, **{k: v for k, v in fields.items() if v})
        done.add(key)
        raised.append(kind)
    if "objects" not in done and (run.quarantine.exists() or "plan" in summary):
        new_q, new_c, total_q, total_c = _new_quarantine(settings, run)
        if new_q or new_c:
            raise_alert(settings, "objects_quarantined",
                        f"run {run.run_id}, new since the last alert: {len({q['anchor'] for q in new_q})} objects "
                        f"quarantined by validation{_collision_counts(new_c, settings.anchor_attribute)} "
                        f"({total_q} quarantined by validation and {total_c} collisions in all); see {run.path}",
                        run_id=run.run_id, quarantined=sorted({q["anchor"] for q in new_q}),
                        collisions=[_collision_text(c, settings.anchor_attribute) for c in new_c])
            raised.append("objects_quarantined")
        done.add("objects")
    if "failures" not in done and run.apply_results.exists():
        for failing in track_failures(settings, run, ops.object_failure_runs):
            raise_alert(settings, "object_failing",
                        f"{failing['kind']} {failing['anchor']} ({failing['dn']}) failed in {failing['runs']} runs in "
                        f"a row since {failing['first_seen']['at']} (run {failing['first_seen']['run']}): "
                        f"{failing['op']} {failing['last_error']}; it is quarantined: {release_advice()}",
                        run_id=run.run_id, anchor=failing["anchor"], runs=failing["runs"],
                        first_seen=failing["first_seen"])
            raised.append("object_failing")
        done.add("failures")
    record_raised(settings, run.run_id, done)
    if raised:
        log.info("run %s: alerts raised: %s", run.run_id, raised)
    return {"raised": raised}


def run(ctx: StageContext) -> dict[str, Any]:
    """The `raise_alerts` teardown: the run's alerts, whatever failed before."""
    return raise_run_alerts(ctx.settings, ctx.run)
