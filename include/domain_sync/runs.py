"""A run's folder: every file one DAG run stages, plans and reports, at fixed names.

<data_dir>/runs/<run id>/
  extract/{users,groups,members}.parquet   staged tenant changes (records.py)
  extract/delta_links.json                 the links this run received (saved to state by commit)
  transform/snapshot_{users,groups,members}.parquet   the tenant snapshot after this round
  transform/records_{users,groups,members}.parquet    directory records
  validate/quarantine.json, validate/report.json
  plan/plan.json, plan/plan.txt
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


class RunFolder:
    def __init__(self, runs_dir: Path | str, run_id: str):
        self.run_id = run_id
        self.path = Path(runs_dir) / safe_run_name(run_id)

    def file(self, stage: str, name: str) -> Path:
        path = self.path / stage / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

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
