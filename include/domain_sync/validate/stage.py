"""The validate stage: run the suites, write the quarantine and the report, stop on systemic failure."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pandas as pd

from domain_sync.config import Settings
from domain_sync.records import GROUP, USER
from domain_sync.runs import RunFolder, write_json_atomic
from domain_sync.validate.suites import SystemicValidationError, validate_records

log = logging.getLogger(__name__)


def validate_run(settings: Settings, run: RunFolder) -> dict:
    outcomes = {}
    for kind, name in ((USER, "records_users.parquet"), (GROUP, "records_groups.parquet")):
        frame = pd.read_parquet(run.file("transform", name))
        outcomes[kind] = validate_records(frame, kind)

    quarantine = [asdict(q) for o in outcomes.values() for q in o.quarantine]
    write_json_atomic(run.file("validate", "quarantine.json"), quarantine)
    write_json_atomic(run.file("validate", "report.json"), {k: o.report for k, o in outcomes.items()})

    problems = []
    for kind, o in outcomes.items():
        if o.missing_columns:
            problems.append(f"{kind} records lack required columns {o.missing_columns}")
        share = len(o.quarantined_anchors) / o.checked if o.checked else 0.0
        if share > settings.max_quarantine_share:
            problems.append(
                f"{len(o.quarantined_anchors)} of {o.checked} {kind}s ({share:.1%}) fail validation, more than "
                f"the limit of {settings.max_quarantine_share:.0%}; first problems: "
                + "; ".join(f"{q.anchor} {q.attribute} ({q.rule}, {q.value_shape})" for q in o.quarantine[:5])
            )
    summary = {
        "checked": {k: o.checked for k, o in outcomes.items()},
        "quarantined": {k: len(o.quarantined_anchors) for k, o in outcomes.items()},
        "quarantine_file": str(run.file("validate", "quarantine.json")),
    }
    for entry in quarantine[:50]:
        log.warning("quarantined %s %s: %s fails %s (%s)", entry["kind"], entry["anchor"], entry["attribute"],
                    entry["rule"], entry["value_shape"])
    if problems:
        raise SystemicValidationError("validation stopped the run before any write: " + " | ".join(problems))
    log.info("validate: %s", summary)
    return summary
