"""A run's folder: every file one DAG run stages, plans and reports, at fixed names.

<data_dir>/runs/<run id>/
  extract/{users,groups,members}.parquet   staged tenant changes (records.py)
  extract/delta_link_{users,groups}.json   the link each extract received (saved to state by commit)
  transform/snapshot_{users,groups,members}.parquet   the tenant snapshot after this round
  transform/records_{users,groups,members}.parquet    directory records
  transform/records_notes.json, records.json, target_schema.json, value_fixes.json
  validate/quarantine.json, validate/report.json
  plan/plan.json, plan/plan.txt, plan/collisions.json
  apply/results.json
  apply/batches.json, apply/batches/<batch>.json, apply/results/<batch>.json   the mapped apply's batches
  credentials/results.json
  state_read.json                          the committed state version extract read (the state lock's hand-off)
  summary/<stage>.json                     each stage's outcome (`summary()` composes them)

The data folder may be on object storage and the tasks of a run on different machines (domain_sync.storage):
every file has one writer, or is created only if absent (state_read.json), so nothing here is locked. Local
folders are private (0700, files 0600: storage.private_dir and make_private).
"""

from __future__ import annotations

import logging
import re
import time
from typing import NamedTuple

from domain_sync.errors import UnknownName
from domain_sync.storage import (
    StoragePath,
    children,
    is_local,
    make_private,
    modified_times,
    private_dir,
    read_json,
    remove_tree,
    write_json_atomic,
)

DAY_SECONDS = 86400

log = logging.getLogger(__name__)


def safe_run_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", run_id)


FRAMES = ("users", "groups", "members")


class RunFolder:
    """One named path per hand-off between stages; the layout is this class's business alone."""

    def __init__(self, runs_dir: StoragePath, run_id: str):
        self.run_id = run_id
        self.runs_dir = runs_dir
        self.path = self.runs_dir / safe_run_name(run_id)
        self._private: set[str] = set()

    def _folder(self, folder: StoragePath) -> StoragePath:
        """A folder of the run, made private (0700 from the data folder down) the first time it is asked for."""
        if str(folder) not in self._private:
            private_dir(folder, root=self.runs_dir.parent)
            self._private.add(str(folder))
        return folder

    def _file(self, stage: str, name: str) -> StoragePath:
        return self._folder(self.path / stage) / name

    # extract -> transform, validate
    def staged(self, frame: str) -> StoragePath:
        """The staged tenant changes of one frame (users, groups, members; records.py)."""
        return self._file("extract", f"{_frame(frame)}.parquet")

    def delta_link(self, resource: str) -> StoragePath:
        """{"link", "full_read", "received_at", "select"}: the link the extract of `resource` received (each
        extract writes its own file: they run in parallel, maybe on different machines)."""
        return self._file("extract", f"delta_link_{resource}.json")

    def delta_links(self) -> dict[str, dict]:
        """{resource: {"link", "full_read", "received_at", "select"}} the run's extracts received; commit saves them."""
        links = {}
        for path in sorted(children(self.path / "extract"), key=lambda p: p.name):
            if path.name.startswith("delta_link_") and path.name.endswith(".json"):
                entry = read_json(path)
                if entry:
                    links[path.name.removeprefix("delta_link_").removesuffix(".json")] = entry
        return links

    @property
    def state_read(self) -> StoragePath:
        """{"version", "read_at"}: the committed state version the run's first extract read (under the state
        lock); transform, apply and commit refuse another one."""
        return self._folder(self.path) / "state_read.json"

    # transform -> validate, plan, commit
    @property
    def snapshot_dir(self) -> StoragePath:
        return self._file("transform", "snapshot_users.parquet").parent

    def snapshot(self, frame: str) -> StoragePath:
        """The tenant snapshot after this round (committed as the new state after a successful apply)."""
        return self._file("transform", snapshot_file_name(frame))

    def records(self, frame: str) -> StoragePath:
        """Directory records of one frame (records.py); commit keeps them (transform/incremental.py)."""
        return self._file("transform", records_file_name(frame))

    RECORDS_META = "records.json"

    @property
    def records_meta(self) -> StoragePath:
        """How transform made the records (whole, or for the round's objects) and their fingerprint; commit keeps it."""
        return self._file("transform", self.RECORDS_META)

    @property
    def records_notes(self) -> StoragePath:
        """What transform left out of the records and why: memberships dropped, users out of scope."""
        return self._file("transform", "records_notes.json")

    @property
    def target_schema(self) -> StoragePath:
        return self._file("transform", "target_schema.json")

    @property
    def value_fixes(self) -> StoragePath:
        return self._file("transform", "value_fixes.json")

    # validate -> plan
    @property
    def quarantine(self) -> StoragePath:
        return self._file("validate", "quarantine.json")

    @property
    def validation_report(self) -> StoragePath:
        return self._file("validate", "report.json")

    @property
    def validation_report_text(self) -> StoragePath:
        return self._file("validate", "report.txt")

    # plan -> apply
    @property
    def plan(self) -> StoragePath:
        return self._file("plan", "plan.json")

    @property
    def plan_preview(self) -> StoragePath:
        return self._file("plan", "plan.txt")

    @property
    def collisions(self) -> StoragePath:
        return self._file("plan", "collisions.json")

    @property
    def domain_index(self) -> StoragePath:
        """The synced objects as this run's plan leaves them known (plan/incremental.py); commit keeps it."""
        return self._file("plan", "domain_index.parquet")

    @property
    def domain_index_meta(self) -> StoragePath:
        """What the domain index was read at (highestCommittedUSN, server, settings fingerprint); commit keeps it."""
        return self._file("plan", "domain_index.json")

    def carried_files(self) -> tuple[StoragePath, ...]:
        """The files commit keeps beside the snapshot, for the next run to build on: the records, how they were
        made and their notes, validation's quarantine, the plan's domain index."""
        return (self.records("users"), self.records("groups"), self.records("members"), self.records_meta,
                self.records_notes, self.quarantine, self.domain_index, self.domain_index_meta)

    # apply -> commit
    @property
    def apply_results(self) -> StoragePath:
        return self._file("apply", "results.json")

    # apply_batches -> the mapped apply tasks -> apply (apply/batches.py)
    @property
    def apply_batches(self) -> StoragePath:
        """The change set cut into batches: the plan's digest and each phase's batch ids."""
        return self._file("apply", "batches.json")

    def apply_batch(self, batch: str) -> StoragePath:
        """The changes of one batch (with their positions in the plan; written by apply_batches alone)."""
        return self._folder(self.path / "apply" / "batches") / f"{_batch(batch)}.json"

    def apply_batch_results(self, batch: str) -> StoragePath:
        """The results of one batch (written by its mapped task alone); apply merges them into `apply_results`."""
        return self._folder(self.path / "apply" / "results") / f"{_batch(batch)}.json"

    @staticmethod
    def batch_section(stage: str, batch: str) -> str:
        """The summary section of one batch's task: a file of its own, as the batches of a phase end at once."""
        return f"{stage}.{_batch(batch)}"

    # credentials -> report (no passwords: the outcome of each password change, what was set aside)
    @property
    def credential_results(self) -> StoragePath:
        return self._file("credentials", "results.json")

    @property
    def summary_dir(self) -> StoragePath:
        """summary/<section>.json: each stage's outcome in a file of its own (stages of a run run in parallel,
        maybe on different machines; `summary()` composes them)."""
        return self.path / "summary"

    def summary(self) -> dict:
        """{section: outcome, ..., "run_id"} of the stages that ended so far ({} before any)."""
        sections = {}
        for path in sorted(children(self.summary_dir), key=lambda p: p.name):
            if path.name.endswith(".json") and not path.name.startswith("."):
                data = read_json(path)
                if data is not None:
                    sections[path.name.removesuffix(".json")] = data
        return sections | {"run_id": self.run_id} if sections else {}

    def update_summary(self, section: str, data: dict) -> dict:
        """Record a stage's outcome (every stage ends here: pipeline.run_stage), then make every file the
        stage wrote in a local run folder private (Parquet and text files arrive with the umask's mode)."""
        write_json_atomic(self._folder(self.summary_dir) / f"{section}.json", data)
        make_private(self.path)
        return self.summary()


def _frame(frame: str) -> str:
    if frame not in FRAMES:
        raise UnknownName(f"unknown frame {frame!r}; expected one of {FRAMES}")
    return frame


def _batch(batch: str) -> str:
    if not re.fullmatch(r"[a-z_]+-[0-9]{4}", batch):
        raise UnknownName(f"not a batch id: {batch!r}; expected <phase>-<number>, e.g. creates-0001")
    return batch


def records_file_name(frame: str) -> str:
    """The file name of the directory records of a frame, in a run folder and in the committed state alike."""
    return f"records_{_frame(frame)}.parquet"


def snapshot_file_name(frame: str) -> str:
    """The file name of a tenant snapshot frame, in a run folder and in the committed state alike."""
    return f"snapshot_{_frame(frame)}.parquet"


class RunTime(NamedTuple):
    path: StoragePath
    mtime: float
    has_summary: bool


def _wrote(folder: StoragePath) -> bool:
    """Whether the run in `folder` wrote to the domain (its apply results count writes)."""
    results = read_json(folder / "apply" / "results.json", None)
    return bool(isinstance(results, dict) and results.get("total_writes"))


def run_time(folder: StoragePath) -> tuple[float, bool] | None:
    """(time, has a summary) of a run folder: its newest summary section's mtime (every stage ends by writing
    one), else the folder's (on object storage, which has no folder times: its newest file's); None when the
    folder is gone."""
    sections = modified_times(folder / "summary")
    if sections:
        return max(sections.values()), True
    if is_local(folder):
        try:
            return folder.stat().st_mtime, False
        except FileNotFoundError:
            return None
    files = modified_times(folder)
    return (max(files.values()) if files else time.time()), False


def runs_by_time(runs_dir: StoragePath, newest_first: bool = False) -> list[RunTime]:
    """The run folders under `runs_dir` by time (`run_time`), oldest first (or newest first). Folders removed
    while they are listed are left out."""
    runs = []
    for folder in children(runs_dir):
        if is_local(folder) and not folder.is_dir():
            continue
        found = run_time(folder)
        if found is not None:
            runs.append(RunTime(folder, *found))
    runs.sort(key=lambda run: run.mtime, reverse=newest_first)
    return runs


def prune_runs(current: RunFolder, keep_runs: int, keep_days: float, now: float | None = None) -> list[str]:
    """Remove the run folders beside `current` that are older than `keep_days`, and the runs that wrote
    nothing to the domain beyond the newest `keep_runs` of them, oldest first; returns their names (oldest
    first) and logs how many. Runs that wrote are kept for `keep_days` whatever their number: they are the
    history `python -m domain_sync.why` answers from, which runs with nothing to do must not push out.

    A run's time is `run_time`'s. Never removed: the
    current run, runs newer than it, and a run without a summary younger than a day (one starting)."""
    now = time.time() if now is None else now
    runs = [(mtime, folder, has_summary) for folder, mtime, has_summary in runs_by_time(current.runs_dir, newest_first=True)
            if not (is_local(folder) and folder.is_symlink())]
    current_time = next((mtime for mtime, folder, _ in runs if folder.name == current.path.name), now)
    doomed = []
    idle = 0  # runs that wrote nothing, newest first
    for mtime, folder, has_summary in runs:
        over_count = False
        if not _wrote(folder):
            over_count = idle >= keep_runs
            idle += 1
        if ((over_count or now - mtime > keep_days * DAY_SECONDS) and folder.name != current.path.name
                and mtime <= current_time and (has_summary or now - mtime >= DAY_SECONDS)):
            doomed.append(folder)
    removed = []
    for folder in reversed(doomed):  # oldest first
        try:
            remove_tree(folder)
        except OSError as exc:
            log.warning("could not remove run folder %s: %s", folder, exc)
            continue
        removed.append(folder.name)
    log.info("run folders: removed %d (keeping every run that wrote and the newest %d that did not, none older "
             "than %g days), %d left", len(removed), keep_runs, keep_days, len(runs) - len(removed))
    return removed
