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
  credentials/results.json
  state_read.json                          the committed state version extract read (the state lock's hand-off)
  summary.json

Everything under the data folder is private to the account the sync runs as, whatever the umask:
folders 0700 (`private_dir`, used by every writer here and in state.py and alerts.py), files 0600
(JSON through `write_json_atomic`, made 0600 by mkstemp; the Parquet and text files stages write
with pandas, pyarrow or write_text are set 0600 by `make_private`, which `update_summary` runs over
the run folder at the end of every stage).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from domain_sync.errors import UnknownName

DAY_SECONDS = 86400
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

log = logging.getLogger(__name__)


def private_dir(path: Path, root: Path | None = None) -> Path:
    """Make `path` a folder only its owner can open (0700) whatever the umask: it and any missing parent
    are created 0700; existing folders from `root` (the data folder) down to `path` are set 0700 too."""
    path = Path(path)
    missing = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # a parallel task made it
            pass
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is cut by the umask, never widened
    if root is not None:
        root = Path(root)
        for folder in (path, *path.parents):
            if folder != root and root not in folder.parents:
                break
            _set_mode(folder, PRIVATE_DIR_MODE)
            if folder == root:
                break
    return path


def make_private(root: Path) -> None:
    """Set every folder under `root` (and root) 0700 and every file 0600; symbolic links are left alone."""
    for folder, _dirs, files in os.walk(root):
        _set_mode(Path(folder), PRIVATE_DIR_MODE)
        for name in files:
            _set_mode(Path(folder) / name, PRIVATE_FILE_MODE)


def _set_mode(path: Path, mode: int) -> None:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
            return
        os.chmod(path, mode)
    except FileNotFoundError:  # a temporary file renamed meanwhile
        pass
    except PermissionError:
        log.warning("cannot make %s private (mode %o): it belongs to another account", path, mode)


def open_private(path: Path, mode: str = "a", encoding: str | None = "utf-8"):
    """Open a file for writing (append by default) that is created 0600, and made 0600 if it was not."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)


def copy_private(source: Path, target: Path) -> None:
    """Copy a file's bytes into a new file made 0600 (shutil.copy2 would carry the source's mode)."""
    with open(source, "rb") as src, open_private(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def safe_run_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", run_id)


def write_json_atomic(path: Path, data: Any, compact: bool = False) -> None:
    """Write JSON so that readers never see half a file; `compact` (one line) for large machine files.
    The file is 0600 (mkstemp creates it so), its folder 0700."""
    private_dir(path.parent)
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
    private_dir(path.parent)
    with open_private(path.with_name(f".{path.name}.lock")) as handle:
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
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / safe_run_name(run_id)
        self._private: set[Path] = set()

    def _folder(self, folder: Path) -> Path:
        """A folder of the run, made private (0700 from the data folder down) the first time it is asked for."""
        if folder not in self._private:
            private_dir(folder, root=self.runs_dir.parent)
            self._private.add(folder)
        return folder

    def _file(self, stage: str, name: str) -> Path:
        return self._folder(self.path / stage) / name

    # extract -> transform, validate
    def staged(self, frame: str) -> Path:
        """The staged tenant changes of one frame (users, groups, members; records.py)."""
        return self._file("extract", f"{_frame(frame)}.parquet")

    @property
    def delta_links(self) -> Path:
        """{resource: {"link", "full_read", "received_at", "select"}} the extract received; commit saves them."""
        return self._file("extract", "delta_links.json")

    @property
    def state_read(self) -> Path:
        """{"version", "read_at"}: the committed state version the run's first extract read (under the state
        lock); transform, apply and commit refuse another one."""
        return self._folder(self.path) / "state_read.json"

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

    @property
    def domain_index(self) -> Path:
        """The synced objects as this run's plan leaves them known (plan/incremental.py); commit keeps it."""
        return self._file("plan", "domain_index.parquet")

    @property
    def domain_index_meta(self) -> Path:
        """What the domain index was read at (highestCommittedUSN, server, settings fingerprint); commit keeps it."""
        return self._file("plan", "domain_index.json")

    # apply -> commit
    @property
    def apply_results(self) -> Path:
        return self._file("apply", "results.json")

    # credentials -> report (no passwords: the outcome of each password change, what was set aside)
    @property
    def credential_results(self) -> Path:
        return self._file("credentials", "results.json")

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    def update_summary(self, section: str, data: dict) -> dict:
        """Record a stage's outcome (every stage ends here: pipeline.run_stage), then make every file the
        stage wrote in the run folder private (Parquet and text files arrive with the umask's mode)."""
        with locked(self.summary_file):
            summary = read_json(self.summary_file, {}) or {}
            summary[section] = data
            summary["run_id"] = self.run_id
            write_json_atomic(self.summary_file, summary)
        make_private(self.path)
        return summary


def _frame(frame: str) -> str:
    if frame not in FRAMES:
        raise UnknownName(f"unknown frame {frame!r}; expected one of {FRAMES}")
    return frame


def snapshot_file_name(frame: str) -> str:
    """The file name of a tenant snapshot frame, in a run folder and in the committed state alike."""
    return f"snapshot_{_frame(frame)}.parquet"


class RunTime(NamedTuple):
    path: Path
    mtime: float
    has_summary: bool


def _wrote(folder: Path) -> bool:
    """Whether the run in `folder` wrote to the domain (its apply results count writes)."""
    results = read_json(folder / "apply" / "results.json", None)
    return bool(isinstance(results, dict) and results.get("total_writes"))


def runs_by_time(runs_dir: Path, newest_first: bool = False) -> list[RunTime]:
    """The run folders under `runs_dir` by time, oldest first (or newest first): a run's time is its
    summary.json's mtime (every stage ends by updating it), the folder's when it has none yet. Folders
    removed while they are listed are left out."""
    runs = []
    for folder in runs_dir.iterdir() if runs_dir.is_dir() else []:
        if not folder.is_dir():
            continue
        summary = folder / "summary.json"
        try:
            has_summary = summary.is_file()
            mtime = (summary if has_summary else folder).stat().st_mtime
        except FileNotFoundError:  # removed meanwhile
            continue
        runs.append(RunTime(folder, mtime, has_summary))
    runs.sort(key=lambda run: run.mtime, reverse=newest_first)
    return runs


def prune_runs(current: RunFolder, keep_runs: int, keep_days: float, now: float | None = None) -> list[str]:
    """Remove the run folders beside `current` that are older than `keep_days`, and the runs that wrote
    nothing to the domain beyond the newest `keep_runs` of them, oldest first; returns their names (oldest
    first) and logs how many. Runs that wrote are kept for `keep_days` whatever their number: they are the
    history `python -m domain_sync.why` answers from, which runs with nothing to do must not push out.

    A run's time is its summary.json's mtime (the folder's when it has none yet). Never removed: the
    current run, runs newer than it, and a run without a summary younger than a day (one starting)."""
    now = time.time() if now is None else now
    runs = [(mtime, folder, has_summary) for folder, mtime, has_summary in runs_by_time(current.runs_dir, newest_first=True)
            if not folder.is_symlink()]
    current_time = next((mtime for mtime, folder, _ in runs if folder == current.path), now)
    doomed = []
    idle = 0  # runs that wrote nothing, newest first
    for mtime, folder, has_summary in runs:
        over_count = False
        if not _wrote(folder):
            over_count = idle >= keep_runs
            idle += 1
        if ((over_count or now - mtime > keep_days * DAY_SECONDS) and folder != current.path
                and mtime <= current_time and (has_summary or now - mtime >= DAY_SECONDS)):
            doomed.append(folder)
    removed = []
    for folder in reversed(doomed):  # oldest first
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("could not remove run folder %s: %s", folder, exc)
            continue
        removed.append(folder.name)
    log.info("run folders: removed %d (keeping every run that wrote and the newest %d that did not, none older "
             "than %g days), %d left", len(removed), keep_runs, keep_days, len(runs) - len(removed))
    return removed
