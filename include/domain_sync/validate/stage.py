"""The validate stage: run the suites, write the quarantine and the reports, stop on systemic failure.

Writes validate/quarantine.json (one entry per failing rule and object: anchor, kind, attribute, rule,
value shape, suite), validate/report.json (every suite's Great Expectations result) and
validate/report.txt (the same, for a person).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict

from domain_sync.columns import isin
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.records import GROUP, USER
from domain_sync.runs import RunFolder
from domain_sync.state import StateStore
from domain_sync.storage import parquet_columns, parquet_rows, read_json, read_parquet, write_json_atomic, write_text
from domain_sync.validate.report import render_report
from domain_sync.validate.suites import (
    TENANT_REQUIRED,
    QuarantineEntry,
    SuiteOutcome,
    SystemicValidationError,
    Validator,
    length_limits,
    validate_names,
    validate_records,
    validate_staged,
    validate_tenant,
)

log = logging.getLogger(__name__)

FRAMES = {USER: "users", GROUP: "groups"}


def _unique_entries(outcomes: list[SuiteOutcome]) -> list[QuarantineEntry]:
    """One entry per object, attribute and rule (the tenant and record suites may see the same fault)."""
    seen, out = set(), []
    for o in outcomes:
        for q in o.quarantine:
            key = (q.anchor, q.attribute, q.rule)
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


def full_read_problems(settings: Settings, run: RunFolder, current: dict[str, int]) -> tuple[list[str], dict]:
    """A full read far smaller than the committed snapshot is a broken read (a filter, a permission,
    a half-answered query), not the tenant: stop before the plan deletes the difference."""
    links = run.delta_links()
    state = StateStore(settings.state_dir)
    problems, counts = [], {}
    for kind, resource in FRAMES.items():
        path = state.snapshot(resource)
        previous = parquet_rows(path) if path is not None else None
        full = bool((links.get(resource) or {}).get("full_read"))
        counts[kind] = {"full_read": full, "now": current[kind], "previous": previous}
        if not full or previous is None or previous < settings.delete_share_min_objects:
            continue
        if current[kind] < settings.min_full_read_share * previous:
            problems.append(
                f"the full read returned {current[kind]} {kind}s, fewer than {settings.min_full_read_share:.0%} of the "
                f"{previous} in the previous snapshot (setting min_full_read_share); a read that loses that many "
                f"is taken for a broken read, not a tenant change"
            )
    return problems, counts


def objects_to_check(settings: Settings, run: RunFolder) -> tuple[set[str] | None, dict]:
    """The objects whose rules on the row alone must be checked (None: every object), and how it was chosen.
    When transform made only the records of the round's objects (the others are the committed ones, under the
    same rules), the others passed those rules at the last commit unless its quarantine named them: the round's
    objects and the last commit's quarantined ones are checked, and uniqueness rules see every row holding a
    value twice (suites.rows_to_check), so the quarantine is the one a check of every object gives."""
    made = read_json(run.records_meta, {}) or {}
    if made.get("mode") != "incremental":
        return None, {"mode": "full"}
    quarantine = committed_quarantine(settings, run)
    if quarantine is None:
        return None, {"mode": "full", "full_because": "no committed quarantine"}
    remade = {str(a) for a in made.get("remade_ids") or []}
    before = {str(q["anchor"]) for q in quarantine if isinstance(q, dict) and q.get("anchor")}
    return remade | before, {"mode": "incremental", "remade": len(remade), "quarantined_before": len(before)}


def committed_quarantine(settings: Settings, run: RunFolder) -> list | None:
    """The quarantine the last commit kept (None: none, or unreadable)."""
    committed = StateStore(settings.state_dir).committed_file(run.quarantine.name)
    quarantine = read_json(committed, None) if committed is not None else None
    return quarantine if isinstance(quarantine, list) else None


def carried_quarantine(settings: Settings, run: RunFolder) -> list[QuarantineEntry] | None:
    """The committed quarantine, when transform carried the committed snapshot and records (an idle round):
    the suites would check the same rows the committing run checked, under the same schema (None: check)."""
    made = read_json(run.records_meta, {}) or {}
    if not made.get("idle_round"):
        return None
    quarantine = committed_quarantine(settings, run)
    if quarantine is None or not all(isinstance(q, dict) for q in quarantine):
        return None
    try:
        return [QuarantineEntry(**q) for q in quarantine]
    except TypeError:  # written by a release with other fields: check again
        return None


def run(ctx: StageContext) -> dict:
    settings, run = ctx.settings, ctx.run
    validator = Validator()
    staged = [validate_staged(validator, resource, read_parquet(run.staged(resource)))
              for resource in ("users", "groups", "members")]
    carried = carried_quarantine(settings, run)
    if carried is None:
        outcomes, checked, checked_how = _check(settings, run, validator, staged)
        quarantine = _unique_entries(outcomes)
    else:
        outcomes, quarantine = staged, carried
        checked = {kind: parquet_rows(run.records(resource)) for kind, resource in FRAMES.items()}
        checked_how = {"mode": "idle round", "carried_from_commit": len(carried)}
    quarantined = {kind: {q.anchor for q in quarantine if q.kind == kind and q.anchor} for kind in (USER, GROUP)}
    return _summarize(settings, run, staged, outcomes, quarantine, quarantined, checked, checked_how)


def _check(settings: Settings, run: RunFolder, validator: Validator,
           staged: list[SuiteOutcome]) -> tuple[list[SuiteOutcome], dict[str, int], dict]:
    """Run the tenant, record and name suites on the rows objects_to_check names: (outcomes with the staged
    ones first, rows per kind, how the rows were chosen)."""
    target_schema = read_json(run.target_schema, {}) or {}
    only, checked_how = objects_to_check(settings, run)
    tenant, records, frames = {}, {}, {}
    for kind, resource in FRAMES.items():
        frame = read_parquet(run.records(resource))
        # The tenant suite reads the required columns alone (a missing one is its systemic failure).
        held = set(parquet_columns(run.snapshot(resource)))
        snapshot = read_parquet(run.snapshot(resource), columns=[c for c in TENANT_REQUIRED[kind] if c in held])
        if "id" in snapshot.columns and "anchor" in frame.columns:
            snapshot = snapshot[isin(snapshot["id"], set(frame["anchor"].tolist()))]
        tenant[kind] = validate_tenant(validator, kind, snapshot, only)
        records[kind] = validate_records(validator, kind, frame, length_limits(target_schema, list(frame.columns)),
                                         only)
        frames[kind] = frame
    names = (validate_names(validator, frames[USER], frames[GROUP], only)
             if all("cn" in f.columns and "anchor" in f.columns for f in frames.values()) else None)
    outcomes = [*staged, *tenant.values(), *records.values(), *([names] if names else [])]
    return outcomes, {kind: len(frames[kind]) for kind in (USER, GROUP)}, checked_how


def _summarize(settings: Settings, run: RunFolder, staged: list[SuiteOutcome], outcomes: list[SuiteOutcome],
               quarantine: list[QuarantineEntry], quarantined: dict[str, set[str]], checked: dict[str, int],
               checked_how: dict) -> dict:
    """The systemic problems (raised after the files are written), the quarantine and the reports."""
    problems = []
    for o in outcomes:
        if o.missing_columns:
            problems.append(f"{o.name}: required columns {o.missing_columns} are missing")
        if o.failed_without_rows:
            problems.append(f"{o.name}: {', '.join(o.failed_without_rows)} failed for the whole data set")
    for o in staged:
        if o.unidentified_rows and o.unidentified_rows > settings.max_quarantine_share * max(o.checked, 1):
            problems.append(f"{o.unidentified_rows} of {o.checked} staged {o.name[len('staged_'):]} rows have no id")
    for kind in (USER, GROUP):
        share = len(quarantined[kind]) / checked[kind] if checked[kind] else 0.0
        if share > settings.max_quarantine_share:
            entries = [q for q in quarantine if q.kind == kind]
            by_rule = Counter((q.attribute, q.rule) for q in entries)
            problems.append(
                f"{len(quarantined[kind])} of {checked[kind]} {kind}s ({share:.1%}) fail validation, more than the "
                f"limit of {settings.max_quarantine_share:.0%} (setting max_quarantine_share): "
                + ", ".join(f"{n} {attribute} {rule}" for (attribute, rule), n in by_rule.most_common())
                + "; for example " + "; ".join(f"{q.anchor} {q.attribute} ({q.value_shape})" for q in entries[:3])
            )
    # Like with like: this run's tenant snapshot against the committed one (records are only the objects
    # in scope, so with scope groups set they would look like a broken read).
    tenant_counts = {k: parquet_rows(run.snapshot(r)) for k, r in FRAMES.items()}
    read_problems, read_counts = full_read_problems(settings, run, tenant_counts)
    problems += read_problems

    all_quarantined = quarantined[USER] | quarantined[GROUP]
    to_quarantined = 0
    if all_quarantined:
        members = read_parquet(run.records("members"), columns=["group_anchor", "member_anchor"])
        to_quarantined = int((isin(members["group_anchor"], all_quarantined)
                              | isin(members["member_anchor"], all_quarantined)).sum())
    notes = read_json(run.records_notes, {}) or {}
    memberships_dropped = {"to_quarantined_object": to_quarantined, **(notes.get("memberships_dropped") or {})}

    summary = {
        "checked": checked,
        # incremental: the rules on the row alone ran on the round's objects and the ones quarantined before;
        # idle round: nothing changed since the commit, whose quarantine is carried
        "rules_ran_on": checked_how,
        "quarantined": {k: len(v) for k, v in quarantined.items()},
        "quarantine_file": str(run.quarantine),
        "report_file": str(run.validation_report_text),
        "unidentified_staged_rows": sum(o.unidentified_rows for o in staged),
        "memberships_dropped": memberships_dropped,
        "counts": read_counts,
    }
    write_json_atomic(run.quarantine, [asdict(q) for q in quarantine])
    write_json_atomic(run.validation_report, {
        "summary": summary, "problems": problems,
        "suites": {o.name: {"kind": o.kind, "checked": o.checked, "missing_columns": o.missing_columns,
                            "expectations": o.expectations, "result": o.report} for o in outcomes},
    })
    write_text(run.validation_report_text, render_report(run.run_id, outcomes, quarantine, summary, problems))
    for entry in quarantine[:50]:
        log.warning("quarantined %s %s: %s fails %s (%s)", entry.kind, entry.anchor, entry.attribute, entry.rule,
                    entry.value_shape)
    if problems:
        raise SystemicValidationError("validation stopped the run before any write: " + " | ".join(problems)
                                      + f" (report: {run.validation_report_text})")
    log.info("validate: %s", summary)
    return summary
