"""Objects whose writes fail run after run: counted, then quarantined, until their tenant object changes.

A change the domain refuses for good (a constraint the plan cannot foresee) must not stop the sync:
apply goes on, commit advances the state, and the plan reconciles the object again next run. After
each run's apply, `track_failures` records every failing object in <data dir>/alerting/failing/ (a document:
storage.update_document)
(anchor -> kind, DN, operation, last error, first seen, runs in a row). An object failing in
`DOMAIN_SYNC_OBJECT_FAILURE_RUNS` runs in a row is quarantined: from the next run on the plan holds it
(`held_for_failing`: no write goes to it, its memberships are kept) instead of writing it again and
again. It stays quarantined, planned or not, until released: its tenant object changed (its id is
in the run's staged extract changes) or the run is a full resync. A released object is written
again; if that fails too it is quarantined again at once (its count goes on). An entry is dropped
once a run that did not hold the object applied without failing it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from domain_sync.alerts import alerting_dir
from domain_sync.config import Settings
from domain_sync.runs import RunFolder
from domain_sync.storage import read_document, read_json, read_parquet, update_document

FAILING_FILE = "failing.json"
HELD_KEY = "held_failing"  # plan.json: the anchors this run's plan held because they kept failing


def failing_objects(settings: Settings) -> dict[str, dict]:
    """{anchor: {"kind", "dn", "op", "result_code", "last_error", "first_seen": {"at", "run"}, "runs", "last_run",
    "last_seen_at", "quarantined": {"at", "run", "read_version"} or None}} of the objects failing run after run."""
    return read_document(_failing_path(settings), {}) or {}


def _failing_path(settings: Settings):
    """The failing objects' document (storage.update_document: apply of one run updates it, its alerts read it)."""
    return alerting_dir(settings) / FAILING_FILE


def _read_version(run: RunFolder) -> str | None:
    return (read_json(run.state_read, {}) or {}).get("version")


def track_failures(settings: Settings, run: RunFolder, limit: int, now: datetime | None = None) -> list[dict]:
    """Record the run's failing objects after its apply; returns the entries ({"anchor", ...}) this run
    quarantined (failing for `limit` runs in a row now). A dry run or an aborted apply counts nothing.
    Calling it again for the same run changes nothing."""
    applied = read_json(run.apply_results, None)
    if applied is None or applied.get("dry_run") or applied.get("aborted"):
        return []
    held = set((read_json(run.plan, {}) or {}).get(HELD_KEY) or [])
    now = now or datetime.now(UTC)
    quarantined_now: list[dict] = []

    def track(previous: dict | None) -> dict:
        previous = previous or {}
        quarantined_now.clear()
        current: dict[str, dict] = {}
        for failure in applied.get("failed") or []:
            anchor = failure.get("anchor")
            if not anchor or anchor in current:
                continue
            before = previous.get(anchor) or {}
            again = before.get("last_run") == run.run_id  # the same run tracked twice
            runs = before.get("runs", 0) + (0 if again else 1)
            entry = {
                "kind": failure.get("kind"), "dn": failure.get("dn"), "op": failure.get("op"),
                "result_code": failure.get("result_code"),
                "last_error": f"LDAP code {failure.get('result_code')} {failure.get('message') or ''}".strip(),
                "first_seen": before.get("first_seen") or {"at": now.isoformat(), "run": run.run_id},
                "runs": runs, "last_run": run.run_id,
                "last_seen_at": before.get("last_seen_at") if again else now.isoformat(),
                "quarantined": before.get("quarantined"),
            }
            if runs >= limit and not again:
                # The version this run read: a later run reading the same one re-reads the same tenant
                # changes (this run did not commit), which are no news about the object.
                entry["quarantined"] = {"at": now.isoformat(), "run": run.run_id, "read_version": _read_version(run)}
                quarantined_now.append({"anchor": anchor, **entry})
            current[anchor] = entry
        for anchor, before in previous.items():
            if anchor not in current and before.get("quarantined") and anchor in held:
                current[anchor] = before  # held: not written, so not failed, still quarantined
        return current  # anything else went through, was not planned, or was released and did

    update_document(_failing_path(settings), track)
    return quarantined_now


def held_for_failing(settings: Settings, run: RunFolder, changed: set[str],
                     full_resync: bool = False) -> tuple[set[str], set[str]]:
    """The plan's (held, released) anchors among the quarantined failing objects: released when the run is
    a full resync, or when the tenant object is in `changed` (this run's staged changes, `staged_ids`) and
    was read since a state other than the one the quarantining run read; held otherwise."""
    quarantined = {a: e["quarantined"] for a, e in failing_objects(settings).items() if e.get("quarantined")}
    if not quarantined:
        return set(), set()
    if full_resync:
        return set(), set(quarantined)
    version = _read_version(run)
    released = {a for a, q in quarantined.items() if a.lower() in changed and q.get("read_version") != version}
    return set(quarantined) - released, released


def staged_ids(run: RunFolder) -> set[str]:
    """The ids (lower case) of the users and groups this run's extract staged as changed."""
    ids: set[str] = set()
    for frame in ("users", "groups"):
        path = run.staged(frame)
        if path.exists():
            ids |= {str(i).lower() for i in read_parquet(path, columns=["id"])["id"].dropna()}
    return ids


def release_advice() -> str:
    """How a quarantined failing object is released, for alerts and the status page."""
    return ("it is held (no write, its memberships kept) until its tenant object changes or a full resync runs "
            "(DAG tenant_to_domain_full_resync)")
