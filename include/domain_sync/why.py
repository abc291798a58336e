"""Why did this object change? Its history across the run folders, oldest run first.

    python -m domain_sync.why <tenant object id | userPrincipalName> [--data-dir DIR]

For every run that touched the object: the tenant change staged by extract (the properties Graph
reported, or the removal), the mapping rules that turn those properties into the domain attributes
the plan changes, the plan's LDAP operations (with the DN and the attribute values), whether the
object was quarantined, held by a collision or held for failing run after run, and the apply result (applied, or failed with the
LDAP result code). A UPN is looked up in the staged frames and records of the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from domain_sync.config import Settings
from domain_sync.failing import HELD_KEY, release_advice
from domain_sync.mapping import load_mapping
from domain_sync.naming import is_object_id
from domain_sync.records import ATTR_PREFIX, FIELDS, GROUP, REMOVED, USER
from domain_sync.runs import RunFolder, runs_by_time
from domain_sync.storage import StoragePath, read_json, read_parquet

KIND_OF_FRAME = {"users": USER, "groups": GROUP}


def run_folders(data_dir: StoragePath) -> list[RunFolder]:
    """The runs of the data folder, oldest first."""
    runs_dir = data_dir / "runs"
    return [RunFolder(runs_dir, run.path.name) for run in runs_by_time(runs_dir)]


def _read_rows(path: StoragePath, column: str, value: str):
    if not path.exists():
        return []
    frame = read_parquet(path)
    if column not in frame.columns:
        return []
    return frame[frame[column].astype(str).str.lower() == value.lower()].to_dict("records")


def resolve(data_dir: StoragePath, key: str) -> str | None:
    """The tenant object id of `key` (an id, or a userPrincipalName found in a run's frames), newest run first."""
    key = key.strip()
    if is_object_id(key):
        return key.lower()
    for run in reversed(run_folders(data_dir)):
        for path, column, id_column in ((run.staged("users"), "userPrincipalName", "id"),
                                        (run.records("users"), f"{ATTR_PREFIX}userPrincipalName", "anchor")):
            rows = _read_rows(path, column, key)
            if rows:
                return str(rows[0][id_column]).lower()
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def tenant_change(run: RunFolder, object_id: str) -> dict | None:
    """What the run's extract staged for the object: {"kind", "removed", "properties": {name: value}}."""
    for frame in ("users", "groups"):
        for row in _read_rows(run.staged(frame), "id", object_id):
            reported = [f for f in str(row.get(FIELDS) or "").split(",") if f]
            properties = {k: _plain(v) for k, v in row.items()
                          if k not in ("id", FIELDS, REMOVED) and (not reported or k in reported)
                          and _plain(v) not in (None, "", [])}
            return {"kind": KIND_OF_FRAME[frame], "removed": _plain(row.get(REMOVED)), "properties": properties}
    return None


def membership_changes(run: RunFolder, object_id: str) -> list[str]:
    lines = []
    for row in _read_rows(run.staged("members"), "member_id", object_id):
        lines.append(f"{'removed from' if row.get('removed') else 'added to'} group {row.get('group_id')}")
    for row in _read_rows(run.staged("members"), "group_id", object_id):
        lines.append(f"member {row.get('member_id')} {'removed' if row.get('removed') else 'added'}")
    return lines


def history(settings: Settings, object_id: str) -> list[dict]:
    """One entry per run that staged, planned, quarantined or applied something for the object."""
    mapping = load_mapping(settings.mapping_file)
    entries = []
    for run in run_folders(settings.data_root):
        entry: dict[str, Any] = {"run": run.path.name}
        change = tenant_change(run, object_id)
        if change:
            entry["tenant"] = change
        members = membership_changes(run, object_id)
        if members:
            entry["memberships"] = members
        quarantined = [q for q in read_json(run.quarantine, []) or [] if str(q.get("anchor", "")).lower() == object_id]
        if quarantined:
            entry["quarantined"] = quarantined
        collisions = [c for c in read_json(run.collisions, []) or [] if str(c.get("anchor", "")).lower() == object_id]
        if collisions:
            entry["collisions"] = collisions
        plan = read_json(run.plan, {}) or {}
        if object_id in {str(a).lower() for a in plan.get(HELD_KEY) or []}:
            entry["held_failing"] = True
        changes = [c for c in plan.get("changes") or [] if str(c.get("anchor", "")).lower() == object_id]
        if changes:
            kind = changes[0].get("kind")
            rules = {r.target.lower(): r for r in mapping.rules(kind)} if kind in (USER, GROUP) else {}
            entry["plan"] = [{
                **{k: c[k] for k in ("op", "dn", "new_dn", "values", "members", "reason") if c.get(k)},
                "rules": [f"{r.source}{f' | {r.function}' if r.function else ''} -> {r.target}"
                          for name in sorted(c.get("values") or {}) if (r := rules.get(name.lower()))],
            } for c in changes]
            entry["plan_status"] = plan.get("status")
        applied = read_json(run.apply_results, None)
        if changes and applied is not None:
            failed = [f for f in applied.get("failed") or [] if str(f.get("anchor", "")).lower() == object_id]
            if applied.get("dry_run"):
                entry["apply"] = "dry run: not applied"
            elif failed:
                entry["apply"] = [f"{f['op']} failed: LDAP code {f.get('result_code')} {f.get('message')}"
                                  for f in failed]
            elif applied.get("aborted"):
                entry["apply"] = f"aborted: {applied['aborted']}"
            else:
                entry["apply"] = "applied"
        if len(entry) > 1:
            entries.append(entry)
    return entries


def format_history(key: str, object_id: str, entries: list[dict]) -> str:
    lines = [f"{key}: tenant object {object_id}" if key.lower() != object_id else f"tenant object {object_id}"]
    if not entries:
        lines.append("  no run staged, planned or applied anything for it")
    for entry in entries:
        lines.append(f"run {entry['run']}")
        tenant = entry.get("tenant")
        if tenant:
            what = (f"removed ({tenant['removed']})" if tenant.get("removed")
                    else ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(tenant["properties"].items())))
            lines.append(f"  tenant change ({tenant['kind']}): {what}")
        for line in entry.get("memberships", []):
            lines.append(f"  tenant membership: {line}")
        for q in entry.get("quarantined", []):
            lines.append(f"  quarantined by validation: {q.get('rule')} on {q.get('attribute')}: {q.get('reason', '')}")
        if entry.get("held_failing"):
            lines.append(f"  held: its writes failed run after run, so it is quarantined; {release_advice()}")
        for c in entry.get("collisions", []):
            lines.append(f"  collision: {c.get('attribute')} {c.get('value')!r} held by {c.get('local_dn')}")
        for change in entry.get("plan", []):
            target = f" -> {change['new_dn']}" if change.get("new_dn") else ""
            lines.append(f"  plan ({entry.get('plan_status')}): {change['op']} {change.get('dn')}{target}"
                         + (f" ({change['reason']})" if change.get("reason") else ""))
            for rule in change.get("rules", []):
                lines.append(f"    mapping rule: {rule}")
            for name, values in sorted((change.get("values") or {}).items()):
                shown = "(cleared)" if not values else ", ".join(map(str, values))[:200]
                lines.append(f"    {name}: {shown}")
            if change.get("members"):
                lines.append(f"    members: {len(change['members'])}")
        if "apply" in entry:
            results = entry["apply"] if isinstance(entry["apply"], list) else [entry["apply"]]
            for result in results:
                lines.append(f"  apply: {result}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m domain_sync.why", description=__doc__.split("\n\n")[0])
    parser.add_argument("object", help="a tenant object id or a user's userPrincipalName")
    parser.add_argument("--data-dir", help="the sync's data folder (default: DOMAIN_SYNC_DATA_DIR)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.data_dir:
        settings = replace(settings, data_dir=args.data_dir)
    object_id = resolve(settings.data_root, args.object)
    if object_id is None:
        print(f"{args.object}: not found in any run of {settings.data_dir}", file=sys.stderr)
        return 1
    print(format_history(args.object, object_id, history(settings, object_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
