"""validate/report.txt: what each suite checked and found, for a person reading a run's folder."""

from __future__ import annotations

from collections import Counter

from domain_sync.validate.suites import QuarantineEntry, SuiteOutcome

MAX_LISTED = 50


def render_report(run_id: str, outcomes: list[SuiteOutcome], quarantine: list[QuarantineEntry], summary: dict,
                  problems: list[str]) -> str:
    lines = [f"validation of run {run_id}", ""]
    lines.append("result: " + ("STOPPED before any write" if problems else "passed"))
    lines += [f"  - {p}" for p in problems]
    quarantined = summary.get("quarantined", {})
    checked = summary.get("checked", {})
    lines.append("quarantined (not loaded; the run goes on): "
                 + ", ".join(f"{quarantined.get(k, 0)} of {checked.get(k, 0)} {k}s" for k in checked))
    dropped = summary.get("memberships_dropped") or {}
    lines.append("memberships left out: " + (", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items())
                                             or "none"))
    if summary.get("unidentified_staged_rows"):
        lines.append(f"staged rows without an id (ignored): {summary['unidentified_staged_rows']}")
    for kind, c in (summary.get("counts") or {}).items():
        read = "full read" if c.get("full_read") else "delta round"
        previous = c.get("previous")
        lines.append(f"{kind}s: {c.get('now')} now ({read}), "
                     + (f"{previous} in the previous snapshot" if previous is not None else "no previous snapshot"))
    lines.append("")
    for o in outcomes:
        head = f"suite {o.name}: {o.checked} rows"
        if o.missing_columns:
            head += f", MISSING COLUMNS {o.missing_columns}"
        if o.unidentified_rows:
            head += f", {o.unidentified_rows} rows without id"
        if not o.missing_columns and not o.expectations:
            head += ", required columns present"
        lines.append(head)
        for e in o.expectations:
            mark = "ok  " if e["success"] else "FAIL"
            lines.append(f"  {mark} {e['expectation']}({e['column']})"
                         + ("" if e["success"] else f": {e['unexpected']} rows"))
    if quarantine:
        lines += ["", f"quarantine ({len(quarantine)} entries; all in quarantine.json):"]
        by_rule = Counter((q.kind, q.attribute, q.rule) for q in quarantine)
        for (kind, attribute, rule), n in sorted(by_rule.items()):
            lines.append(f"  {n:6d}  {kind} {attribute}: {rule}")
        lines.append("")
        for q in quarantine[:MAX_LISTED]:
            lines.append(f"  {q.kind} {q.anchor}: {q.attribute} fails {q.rule} ({q.value_shape})")
        if len(quarantine) > MAX_LISTED:
            lines.append(f"  ... and {len(quarantine) - MAX_LISTED} more")
    return "\n".join(lines) + "\n"
