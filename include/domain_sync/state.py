"""Committed sync state: the delta links and the tenant snapshot they lead to.

Both move together, and only after the apply that consumed them went through its plan (objects whose
change failed do not hold it back: the next plan reconciles them again). A stage that failed, an
aborted apply or one stopped by too many failures leaves the previous pair in place, so the next
run reads the same changes again (at-least-once extraction; apply is idempotent). A commit writes a
new version folder and then appends the pointer entry after the one its run read (create-if-absent:
storage.JsonLog), so two runs can never both commit on one version, and a crash mid-commit leaves either
the old state or the new one. The state may be on object storage, its tasks on several machines.

Runs never work on the state at once: the first extract of a run takes the state lock (the lock log,
naming the run) and records the committed version it read in the run folder; transform, apply and
commit refuse to go on when another run holds the lock or the committed version is no longer that
one. Commit frees the lock, and so does the DAG's `release_state_lock` teardown for a run that ended
before commit. A lock whose run Airflow has finished, or older than `state_lock_stale_hours`, is
taken over by the next extract (alert `state_lock_recovered`); by hand:
`python -m domain_sync.state lock` shows it, `python -m domain_sync.state unlock RUN_ID` frees it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from domain_sync.alerts import raise_alert
from domain_sync.config import Settings, SettingsError
from domain_sync.context import StageContext
from domain_sync.errors import PermanentError, StageInputMissing, TransientError
from domain_sync.runs import FRAMES, RunFolder, snapshot_file_name
from domain_sync.storage import (
    JsonLog,
    LogConflict,
    StoragePath,
    children,
    copy_file,
    create_exclusive,
    is_folder,
    private_dir,
    read_json,
    remove,
    remove_tree,
    write_json_atomic,
)

log = logging.getLogger(__name__)

SNAPSHOT_FILES = tuple(snapshot_file_name(frame) for frame in FRAMES)
DELTA_LINK_WARN_AGE_DAYS = 6  # Graph forgets delta links after 7 days (MS)
LINKS_FILE = "delta_links.json"
ORPHAN_AGE = timedelta(days=1)  # a version folder no pointer names, this old, is a crashed commit's: removed
LOCK_ATTEMPTS = 20  # lock changes lost to another writer in a row before giving up (each re-reads the lock)


class StateStore:
    """<state dir>/
      pointer/<seq>.json   {"version", "committed_at", "run_id"}: the committed version is the newest entry's
                           (a JsonLog: a commit appends the entry after the one its run read, or fails)
      v-<time>-<id>/       a committed version: the snapshot frames and delta_links.json, never changed after
                           its commit (but for the lock holder's forget_delta_links)
      lock/<seq>.json      the state lock: the newest entry names the holder, or {"free": true}
      writes.json          the last run whose apply wrote through this store
      current.json, lock.json   the single-file pointer and lock of earlier releases, read while the logs are empty
    """

    def __init__(self, state_dir: StoragePath):
        self.dir = state_dir
        self._pointer = JsonLog(self.dir / "pointer", legacy=self.dir / "current.json")
        self._lock = JsonLog(self.dir / "lock", legacy=self.dir / "lock.json")

    def _version_dir(self, version: str) -> StoragePath:
        return self.dir / version

    def current(self) -> StoragePath | None:
        version = self.version()
        if version is None:
            return None
        path = self._version_dir(version)
        return path if is_folder(path) else None

    def delta_links(self) -> dict[str, dict]:
        """{resource: {"link": str, "received_at": iso time, "saved_at": iso time}} of the committed state.

        `received_at` is when Graph issued the link (the extract), `saved_at` when it was committed."""
        current = self.current()
        return (read_json(current / LINKS_FILE, {}) or {}) if current else {}

    def committed_file(self, name: str) -> StoragePath | None:
        """A file committed beside the snapshot (RunFolder.carried_files: the records, the quarantine, the domain
        index), if there is one."""
        current = self.current()
        return current / name if current is not None and (current / name).exists() else None

    def snapshot(self, frame: str) -> StoragePath | None:
        """The committed tenant snapshot of one frame (users, groups, members), if there is one."""
        current = self.current()
        name = snapshot_file_name(frame)
        if current is None or not (current / name).exists():
            return None
        return current / name

    def commit(self, snapshot_dir: StoragePath, delta_links: dict[str, str | dict], now: datetime | None = None,
               run_id: str | None = None, read_version: str | None | object = ...,
               extra_files: tuple[StoragePath, ...] = ()) -> str:
        """Save the snapshot and the links ({resource: link or {"link", "received_at"}}) as the new state: a new
        version folder, then the pointer entry after the one read here. `read_version`: the version the run
        read (StateChanged when the pointer names another one); StateChanged too when another commit appended
        to the pointer meanwhile. A crash before the pointer entry leaves the old state (and an orphan folder,
        removed a day later by a commit). `extra_files` (RunFolder.carried_files) are kept beside the snapshot
        when they exist."""
        now = now or datetime.now(UTC)
        seq, pointer = self._pointer.latest()
        current_version = pointer.get("version") if pointer else None
        if read_version is not ... and current_version != read_version:
            raise StateChanged(f"run {run_id}: the committed state is version {current_version!r}, but this run's "
                               f"extract read {read_version!r}: another run committed since. Start a new run (it "
                               f"reads the changes since the new state)")
        version = f"v-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        target = private_dir(self._version_dir(version), root=self.dir.parent)  # 0700 from the data folder down
        for name in SNAPSHOT_FILES:
            copy_file(snapshot_dir / name, target / name)  # 0600, whatever the run's copy has
        for source in extra_files or ():  # kept beside the snapshot when the run wrote them
            if source.exists():
                copy_file(source, target / source.name)
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
        write_json_atomic(target / LINKS_FILE, links)
        try:
            self._move_pointer(seq, {"version": version, "committed_at": now.isoformat(), "run_id": run_id})
        except LogConflict:
            remove_tree(target)
            raise StateChanged(f"run {run_id}: another run committed a new state version while this one committed "
                               f"on version {current_version!r}; this run's commit is refused. Start a new run "
                               f"(it reads the changes since the new state)") from None
        if seq == 0:
            remove(self._pointer.legacy)  # the log holds the pointer from now on
        if current_version is not None and current_version != version:
            remove_tree(self._version_dir(current_version))
        self._remove_orphans(version, now)
        return version

    def _move_pointer(self, seq: int, entry: dict) -> None:
        """The one step that makes a version the committed one (a hook for the tests of crashes before it)."""
        self._pointer.append(seq, entry)

    def _remove_orphans(self, version: str, now: datetime) -> None:
        for folder in children(self.dir):
            name = folder.name
            if not name.startswith("v-") or name == version:
                continue
            try:
                made = datetime.strptime(name.split("-")[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            except (IndexError, ValueError):
                continue
            if now - made > ORPHAN_AGE:
                log.info("removing %s: a state version no pointer names (a commit that crashed or lost)", folder)
                remove_tree(folder)

    def forget_delta_links(self) -> list[str]:
        """Empty the committed delta links (the snapshot stays), so that the next read of each resource is a
        full one; the caller holds the state lock (the only change to a committed version after its commit).
        Returns the resources whose links went."""
        links = self.delta_links()
        current = self.current()
        if current is not None and links:
            write_json_atomic(current / LINKS_FILE, {})
        return sorted(links)

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

    # ---- lock and version (docs/design.md, "Runs never overlap")
    def version(self) -> str | None:
        """The committed version the pointer names (None: nothing committed yet)."""
        pointer = self._pointer.latest()[1]
        return pointer.get("version") if pointer else None

    def missing_files(self) -> list[str]:
        """What the committed state names but does not hold (empty: whole, or nothing committed)."""
        version = self.version()
        if version is None:
            return []
        folder = self._version_dir(version)
        if not is_folder(folder):
            return [f"{version}/ (the whole committed version)"]
        return [f"{version}/{name}" for name in (LINKS_FILE, *SNAPSHOT_FILES) if not (folder / name).exists()]

    def has_snapshot(self) -> bool:
        """A committed tenant snapshot is there, every frame of it."""
        current = self.current()
        return current is not None and all((current / name).exists() for name in SNAPSHOT_FILES)

    @property
    def writes_file(self) -> StoragePath:
        return self.dir / "writes.json"

    def note_writes(self, run_id: str, now: datetime | None = None) -> None:
        """Apply, before its first write: this state store's runs write to the domain. A store without a
        committed snapshot but with this note was never lost: a first sync wrote and did not commit."""
        write_json_atomic(self.writes_file, {"run_id": run_id, "at": (now or datetime.now(UTC)).isoformat()})

    def last_writes(self) -> dict | None:
        """{"run_id", "at"} of the last run whose apply wrote through this state store, or None."""
        return read_json(self.writes_file)

    def _holder(self) -> tuple[int, dict | None]:
        seq, entry = self._lock.latest()
        return seq, (None if not entry or entry.get("free") else entry)

    def lock_holder(self) -> dict | None:
        """{"run_id", "dag_id", "acquired_at", "seen_at", "host", "pid"} of the run holding the lock, or None."""
        return self._holder()[1]

    def acquire_lock(self, run_id: str, dag_id: str | None = None, stale_after_hours: float = 12.0,
                     holder_finished: Callable[[dict], str | None] | None = None,
                     now: datetime | None = None) -> dict | None:
        """Take the lock for `run_id` (a no-op when the run holds it: its other extract, a retry).

        Raises `StateLocked` while another run holds it. A lock whose run is finished
        (`holder_finished(lock)` names the run's final state) or that was last seen more than
        `stale_after_hours` ago is taken over; the replaced lock is returned (with "stale": why). Taking it is
        appending to the lock log after the entry read: of two runs taking it at once one gets it, the other
        reads the lock again (and finds it held)."""
        now = now or datetime.now(UTC)
        for _ in range(LOCK_ATTEMPTS):
            seq, holder = self._holder()
            if holder and holder.get("run_id") == run_id:
                return None
            replaced = None
            if holder:
                why = _stale_reason(holder, now, stale_after_hours, holder_finished)
                if why is None:
                    raise StateLocked(
                        f"run {run_id}: the sync state is locked by run {holder.get('run_id')!r}"
                        + (f" of DAG {holder['dag_id']}" if holder.get("dag_id") else "")
                        + f" since {holder.get('acquired_at')}; runs never work on the state at once, and nothing "
                        f"was read or written. This task is retried; the lock is freed when that run commits or "
                        f"ends, and taken over once Airflow has finished that run or it is older than "
                        f"{stale_after_hours:g} hours (setting state_lock_stale_hours). To free it by hand: "
                        f"python -m domain_sync.state unlock {holder.get('run_id')}")
                replaced = holder | {"stale": why}
            try:
                self._lock.append(seq, {
                    "run_id": run_id, "dag_id": dag_id, "acquired_at": now.isoformat(), "seen_at": now.isoformat(),
                    "host": socket.gethostname(), "pid": os.getpid()})
            except LogConflict:
                continue
            return replaced
        raise StateLocked(f"run {run_id}: the state lock changed hands {LOCK_ATTEMPTS} times while this run tried to "
                          f"take it; this task is retried")

    def _change_own_lock(self, run_id: str, change: Callable[[dict], dict]) -> bool:
        """Append change(holder) to the lock log while `run_id` holds the lock; False when it does not."""
        for _ in range(LOCK_ATTEMPTS):
            seq, holder = self._holder()
            if not holder or holder.get("run_id") != run_id:
                return False
            try:
                self._lock.append(seq, change(holder))
                return True
            except LogConflict:
                continue
        return False

    def touch_lock(self, run_id: str, now: datetime | None = None) -> None:
        """Note that the holder is still at work (staleness counts from the last stage that checked)."""
        seen = (now or datetime.now(UTC)).isoformat()
        self._change_own_lock(run_id, lambda holder: holder | {"seen_at": seen})

    def release_lock(self, run_id: str) -> bool:
        """Free the lock if `run_id` holds it; True when it did."""
        at = datetime.now(UTC).isoformat()
        return self._change_own_lock(run_id, lambda holder: {"free": True, "released_by": run_id, "at": at})


class StateLocked(TransientError):
    """Another run holds the state lock. Transient: the task waits through its Airflow retries, then
    fails naming the holder; nothing was read or written."""


class StateChanged(PermanentError):
    """The committed state is not the version this run's extract read, or another run holds the lock
    now: the run must not fold, write or commit on it. A new run starts from the new state."""


class StateLost(PermanentError):
    """The committed state names files that are gone: its delta links must not be folded onto nothing."""


def _stale_reason(holder: dict, now: datetime, stale_after_hours: float,
                  holder_finished: Callable[[dict], str | None] | None) -> str | None:
    if holder_finished is not None:
        try:
            finished = holder_finished(holder)
        except Exception as exc:  # noqa: BLE001 - cannot tell: the age decides
            log.info("could not ask Airflow for the state of run %s: %s", holder.get("run_id"), exc)
            finished = None
        if finished:
            return f"its run is {finished} in Airflow"
    times = [datetime.fromisoformat(holder[k]) for k in ("acquired_at", "seen_at") if holder.get(k)]
    age = (now - max(times)).total_seconds() / 3600 if times else float("inf")
    if age > stale_after_hours:
        return f"last seen {age:.1f} hours ago, more than {stale_after_hours:g} (setting state_lock_stale_hours)"
    return None


def airflow_run_finished(holder: dict) -> str | None:
    """The final state ("success", "failed") of the lock holder's DAG run when Airflow has finished it;
    None when it has not, or when this is not an Airflow task or the lock names no DAG."""
    if not holder.get("dag_id") or not os.environ.get("AIRFLOW_CTX_DAG_ID"):
        return None
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    # Runs of DAGs other than the sync hold the lock under "<dag id>.<run id>" (domain_sync.run_keys).
    run_id = str(holder["run_id"]).removeprefix(f"{holder['dag_id']}.")
    state = RuntimeTaskInstance.get_dagrun_state(holder["dag_id"], run_id)
    state = str(getattr(state, "value", state))
    return state if state in ("success", "failed") else None


LOCK_POLL_SECONDS = 5.0


def _wait_for_lock(settings: Settings, state: StateStore, run: RunFolder, now: datetime | None,
                   sleep: Callable[[float], None], clock: Callable[[], float]) -> dict | None:
    """Take the state lock, waiting up to `state_lock_wait_seconds` while another run holds it (a drift
    check or a backfill beside the schedule), so that a short overlap costs a wait, not a failed run."""
    deadline = clock() + settings.state_lock_wait_seconds
    waited = False
    while True:
        try:
            return state.acquire_lock(run.run_id, dag_id=os.environ.get("AIRFLOW_CTX_DAG_ID"),
                                      stale_after_hours=settings.state_lock_stale_hours,
                                      holder_finished=airflow_run_finished, now=None if waited else now)
        except StateLocked as exc:
            left = deadline - clock()
            if left <= 0:
                raise
            if not waited:
                log.info("%s; waiting up to %.0f s for it (setting state_lock_wait_seconds)", exc,
                         settings.state_lock_wait_seconds)
            waited = True
            sleep(min(LOCK_POLL_SECONDS, left))


def hold_state(settings: Settings, run: RunFolder, now: datetime | None = None,
               sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str | None:
    """Extract's first step (both extracts of a run, and their retries): take the state lock for the
    run and record the committed version it reads (`run.state_read`). Returns that version."""
    if settings.state_lock_stale_hours <= 0:
        raise SettingsError(f"setting DOMAIN_SYNC_STATE_LOCK_STALE_HOURS={settings.state_lock_stale_hours} must be "
                            f"more than 0")
    given = now
    state = StateStore(settings.state_dir)
    replaced = _wait_for_lock(settings, state, run, given or datetime.now(UTC), sleep, clock)
    now = given or datetime.now(UTC)  # when this run took the lock and read the state (after any wait)
    if replaced:
        raise_alert(settings, "state_lock_recovered",
                    f"run {run.run_id} took over the state lock of run {replaced.get('run_id')} ({replaced['stale']}); "
                    f"if that run is still writing, its commit is refused (the state version moved on)",
                    run_id=run.run_id, previous_holder=replaced.get("run_id"))
    version = state.version()
    # Both extracts of a run (maybe on two machines) get here: the first records the version, the other
    # finds the record and checks it.
    record = {"version": version, "read_at": now.isoformat()}
    if not create_exclusive(run.state_read, json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"):
        recorded = read_json(run.state_read) or {}
        if recorded.get("version") != version:
            raise StateChanged(f"run {run.run_id}: its first extract read state version {recorded.get('version')!r}, "
                               f"the committed state is now {version!r}: another run committed meanwhile. Start a "
                               f"new run (it reads the changes since the new state)")
    return version


def check_state(state: StateStore, run: RunFolder) -> str | None:
    """Transform, apply and commit: no other run holds the lock, and the committed version is the one
    this run's extract read. Returns that version."""
    recorded = read_json(run.state_read)
    if recorded is None:
        raise StageInputMissing(f"run {run.run_id}: no record of the state version extract read; extract must run "
                                f"first")
    holder = state.lock_holder()
    if holder and holder.get("run_id") != run.run_id:
        raise StateChanged(f"run {run.run_id}: run {holder.get('run_id')!r} holds the state lock now (since "
                           f"{holder.get('acquired_at')}); this run must not go on. Start a new run once that one "
                           f"has finished")
    version = state.version()
    if version != recorded.get("version"):
        raise StateChanged(f"run {run.run_id}: the committed state is version {version!r}, but this run's extract "
                           f"read {recorded.get('version')!r}: another run committed since. Start a new run (it reads "
                           f"the changes since the new state)")
    if holder:
        state.touch_lock(run.run_id)
    return version


def release_run_lock(settings: Settings, run_id: str) -> dict:
    """The DAG's `release_state_lock` teardown: free the lock if this run still holds it (a run that
    ended before commit)."""
    state = StateStore(settings.state_dir)
    released = state.release_lock(run_id)
    if released:
        log.warning("run %s ended without a commit: its state lock is released", run_id)
    holder = state.lock_holder()
    return {"released": released, "holder": holder.get("run_id") if holder else None}


class ApplyIncomplete(PermanentError):
    """Apply did not finish for this run; its delta links are not saved, so the next run reads the same changes."""


# apply/results.json: apply wrote every change it could and then stopped the run (too many failed).
APPLY_STOPPED = "stopped"


def commit_run(state: StateStore, run: RunFolder, dry_run: bool = False) -> dict:
    """Save the run's delta links and snapshot as the committed state once apply has gone through the plan.

    Objects whose change failed do not stop the commit: every plan reconciles the whole snapshot against
    the domain, so they are written again next run (and quarantined when they keep failing,
    domain_sync.failing). Refused: no apply results, an aborted apply (the domain went away part way),
    or an apply that stopped because too many changes failed."""
    if dry_run:
        state.release_lock(run.run_id)
        return {"committed": False, "reason": "dry run: the same changes are read again next time"}
    links = run.delta_links()
    if not links:
        raise StageInputMissing(f"run {run.run_id}: no delta links to commit; extract must run first")
    applied = read_json(run.apply_results)
    if applied is None or applied.get("aborted") or applied.get(APPLY_STOPPED):
        why = ("no apply results" if applied is None else
               f"apply was aborted ({applied['aborted']})" if applied.get("aborted") else
               f"apply stopped the run ({applied[APPLY_STOPPED]})")
        raise ApplyIncomplete(f"run {run.run_id}: apply did not go through the plan: {why}; the delta links are not "
                              f"saved, so the next run reads the same changes again")
    read_version = check_state(state, run)
    # The pointer moves only from the version this run read (another commit since: StateChanged).
    version = state.commit(run.snapshot_dir, {
        r: {"link": e["link"], "received_at": e.get("received_at"), "select": e.get("select")}
        for r, e in links.items()}, run_id=run.run_id, read_version=read_version,
        extra_files=run.carried_files())
    state.release_lock(run.run_id)
    return {"committed": True, "version": version, "previous_version": read_version}


def run(ctx: StageContext) -> dict:
    """The commit stage."""
    return commit_run(StateStore(ctx.settings.state_dir), ctx.run, dry_run=ctx.flag("dry_run"))


def main(argv: list[str]) -> int:
    """`python -m domain_sync.state lock` shows the state lock; `... unlock RUN_ID` frees the lock of RUN_ID
    (a run Airflow no longer runs: check that it is finished first)."""
    state = StateStore(Settings.from_env().state_dir)
    if argv[:1] == ["lock"] and len(argv) == 1:
        holder = state.lock_holder()
        print(f"locked by {holder}" if holder else "not locked")
        print(f"committed version: {state.version()}")
        return 0
    if argv[:1] == ["unlock"] and len(argv) == 2:
        if state.release_lock(argv[1]):
            print(f"state lock of run {argv[1]} released")
            return 0
        print(f"run {argv[1]} does not hold the state lock (holder: {state.lock_holder()})")
        return 1
    print("usage: python -m domain_sync.state lock | unlock RUN_ID")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
