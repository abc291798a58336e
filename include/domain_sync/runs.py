"""A run's folder: every file one DAG run stages, plans and reports, at fixed names.

<data_dir>/runs/<run id>/
  extract/{users,groups,members}.parquet   staged tenant changes (records.py)
  extract/delta_links.json                 the links this run received (saved to state by commit)
  transform/snapshot_{users,groups,members}.parquet   the tenant snapshot after this round
  transform/records_{users,groups,members}.parquet    directory records
  transform/records_notes.json, target_schema.json, value_fixes.json
  validate/quarantine.json, validate/report.json
  plan/plan.json, plan/plan.txt, plan/collisions.json
  apply/results.json
  summary.json
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def safe_run_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", run_id)


def write_json_atomic(path: Path, data: Any, compact: bool = False) -> None:
    """Write JSON so that readers never see half a file; `compact` (one line) for large machine files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if compact:  # json.dumps: C encoder (json.dump encodes in Python, chunk by chunk)
            handle.write(json.dumps(data, separators=(",", ":"), default=str))
        else:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path` (extract_users and extract_groups run in parallel and update
    the same run files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


FRAMES = ("users", "groups", "members")


class RunFolder:
    """One named path per hand-off between stages; the layout is this class's business alone."""

    def __init__(self, runs_dir: Path | str, run_id: str):
        self.run_id = run_id
        self.path = Path(runs_dir) / safe_run_name(run_id)

    def _file(self, stage: str, name: str) -> Path:
        path = self.path / stage / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # extract -> transform, validate
    def staged(self, frame: str) -> Path:
        """The staged tenant changes of one frame (users, groups, members; records.py)."""
        return self._file("extract", f"{_frame(frame)}.parquet")

    @property
    def delta_links(self) -> Path:
        """{resource: {"link", "full_read", "received_at", "select"}} the extract received; commit saves them."""
        return self._file("extract", "delta_links.json")

    # transform -> validate, plan, commit
    @property
    def snapshot_dir(self) -> Path:
        return self._file("transform", "snapshot_users.parquet").parent

    def snapshot(self, frame: str) -> Path:
        """The tenant snapshot after this round (committed as the new state after a successful apply)."""
        return self._file("transform", snapshot_file_name(frame))

    def records(self, frame: str) -> Path:
        """Directory records of one frame (records.py)."""
        return self._file("transform", f"records_{_frame(frame)}.parquet")

    @property
    def records_notes(self) -> Path:
        """What transform left out of the records and why: memberships dropped, users out of scope."""
        return self._file("transform", "records_notes.json")

    @property
    def target_schema(self) -> Path:
        return self._file("transform", "target_schema.json")

    @property
    def value_fixes(self) -> Path:
        return self._file("transform", "value_fixes.json")

    # validate -> plan
    @property
    def quarantine(self) -> Path:
        return self._file("validate", "quarantine.json")

    @property
    def validation_report(self) -> Path:
        return self._file("validate", "report.json")

    @property
    def validation_report_text(self) -> Path:
        return self._file("validate", "report.txt")

    # plan -> apply
    @property
    def plan(self) -> Path:
        return self._file("plan", "plan.json")

    @property
    def plan_preview(self) -> Path:
        return self._file("plan", "plan.txt")

    @property
    def collisions(self) -> Path:
        return self._file("plan", "collisions.json")

    # apply -> commit
    @property
    def apply_results(self) -> Path:
        return self._file("apply", "results.json")

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    def update_summary(self, section: str, data: dict) -> dict:
        with locked(self.summary_file):
            summary = read_json(self.summary_file, {}) or {}
            summary[section] = data
            summary["run_id"] = self.run_id
            write_json_atomic(self.summary_file, summary)
        return summary


def _frame(frame: str) -> str:
    if frame not in FRAMES:
        raise ValueError(f"unknown frame {frame!r}; expected one of {FRAMES}")
    return frame


def snapshot_file_name(frame: str) -> str:
    """The file name of a tenant snapshot frame, in a run folder and in the committed state alike."""
    return f"snapshot_{_frame(frame)}.parquet"
