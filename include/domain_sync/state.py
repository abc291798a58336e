"""Committed sync state: the delta links and the tenant snapshot they lead to.

Both move together, and only after the apply that consumed them succeeded: a failure anywhere
leaves the previous pair in place, so the next run reads the same changes again (at-least-once
extraction; apply is idempotent). A commit writes a new version folder and then swaps a pointer
file atomically, so a crash mid-commit leaves either the old state or the new one.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from domain_sync.context import StageContext
from domain_sync.errors import PermanentError, StageInputMissing
from domain_sync.runs import (
    FRAMES,
    RunFolder,
    copy_private,
    private_dir,
    read_json,
    snapshot_file_name,
    write_json_atomic,
)

SNAPSHOT_FILES = tuple(snapshot_file_name(frame) for frame in FRAMES)
DELTA_LINK_WARN_AGE_DAYS = 6  # Graph forgets delta links after 7 days (MS)


class StateStore:
    def __init__(self, state_dir: Path | str):
        self.dir = Path(state_dir)

    @property
    def _pointer(self) -> Path:
        return self.dir / "current.json"

    def current(self) -> Path | None:
        pointer = read_json(self._pointer)
        if not pointer:
            return None
        path = self.dir / pointer["version"]
        return path if path.exists() else None

    def delta_links(self) -> dict[str, dict]:
        """{resource: {"link": str, "received_at": iso time, "saved_at": iso time}} of the committed state.

        `received_at` is when Graph issued the link (the extract), `saved_at` when it was committed."""
        current = self.current()
        return (read_json(current / "delta_links.json", {}) or {}) if current else {}

    def snapshot(self, frame: str) -> Path | None:
        """The committed tenant snapshot of one frame (users, groups, members), if there is one."""
        current = self.current()
        name = snapshot_file_name(frame)
        if current is None or not (current / name).exists():
            return None
        return current / name

    def commit(self, snapshot_dir: Path, delta_links: dict[str, str | dict], now: datetime | None = None) -> str:
        """Save the snapshot and the links ({resource: link or {"link", "received_at"}}) as the new state."""
        now = now or datetime.now(UTC)
        version = f"v-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        target = private_dir(self.dir / version, root=self.dir.parent)  # 0700 from the data folder down
        for name in SNAPSHOT_FILES:
            copy_private(snapshot_dir / name, target / name)  # 0600, whatever the run's copy has
        previous = self.delta_links()
        links = {}
        for resource, entry in delta_links.items():
            entry = entry if isinstance(entry, dict) else {"link": entry}
            links[resource] = {"link": entry["link"], "received_at": entry.get("received_at") or now.isoformat(),
                               "saved_at": now.isoformat()}
            if entry.get("select"):
                links[resource]["select"] = entry["select"]
        for resource, entry in previous.items():
            links.setdefault(resource, entry)
        write_json_atomic(target / "delta_links.json", links)
        old = self.current()
        write_json_atomic(self._pointer, {"version": version, "committed_at": now.isoformat()})
        if old is not None and old != target:
            shutil.rmtree(old, ignore_errors=True)
        return version

    def delta_link_ages(self, now: datetime | None = None) -> dict[str, float]:
        """Age in days of each saved link, from the older of its receive and commit times (Graph's
        7-day limit runs from when it issued the link)."""
        now = now or datetime.now(UTC)
        ages = {}
        for resource, entry in self.delta_links().items():
            times = [datetime.fromisoformat(entry[k]) for k in ("received_at", "saved_at") if entry.get(k)]
            if times:
                ages[resource] = (now - min(times)).total_seconds() / 86400
        return ages


class ApplyIncomplete(PermanentError):
    """Apply did not succeed for this run; its delta links are not saved, so the next run reads the same changes."""


def commit_run(state: StateStore, run: RunFolder, dry_run: bool = False) -> dict:
    """Save the run's delta links and snapshot as the committed state (after a successful apply)."""
    if dry_run:
        return {"committed": False, "reason": "dry run: the same changes are read again next time"}
    links = read_json(run.delta_links)
    if not links:
        raise StageInputMissing(f"run {run.run_id}: no delta links to commit; extract must run first")
    applied = read_json(run.apply_results)
    if applied is None or applied.get("aborted") or applied.get("failed"):
        raise ApplyIncomplete(f"run {run.run_id}: apply did not succeed; the delta links are not saved, so the next "
                              f"run reads the same changes again")
    version = state.commit(run.snapshot_dir, {
        r: {"link": e["link"], "received_at": e.get("received_at"), "select": e.get("select")}
        for r, e in links.items()})
    return {"committed": True, "version": version}


def run(ctx: StageContext) -> dict:
    """The commit stage."""
    return commit_run(StateStore(ctx.settings.state_dir), ctx.run, dry_run=ctx.flag("dry_run"))
