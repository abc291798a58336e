"""Runs a change set over a pool of connections: phases in plan order, objects in parallel.

A phase is a run of consecutive changes of one operation (the plan sorts them in `Op`:
containers, creates, renames, modifies, member adds and removes, disables, deletes), so a phase
only starts once every write it may refer to has finished: no dangling reference, as in serial
order. Within a phase the changes are cut into units that never share an object (its anchor; for
renames and containers also the DNs they free, take or need), each unit runs in order on one
worker, and the units run in parallel, one ldap3 connection per worker (a connection is not
thread-safe).

Values naming objects this run created by DN (members of a group, a manager) are dropped when that
create failed: the DN may be another object's by now (one that took the name after the plan). The
result of such a change says which values were left out and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from domain_sync.apply.writer import ADDRESSED_BY_DN_CHECKED, FILTER_BATCH, ApplyAborted, ApplySummary, DomainWriter
from domain_sync.dn import DNError, normalize_dn, parent_dn
from domain_sync.records import FAILED, SKIPPED, ApplyResult, Change, Op

log = logging.getLogger(__name__)

Unit = list[int]  # indexes into the change list, applied in this order by one worker
# Fewer changes addressed by DN in a phase than this: each reads its DN itself (a batch costs a search).
MIN_BATCHED_CHECKS = 10
READ, WRITE = "read", "write"  # what a worker does next in a phase (_Phase.next_work)


def _resources(change: Change) -> list[str]:
    """What a change must not share with a parallel one: its object, and for renames and containers
    the DNs involved (a rename into a name another rename frees; a container inside a new one)."""
    keys = [f"anchor:{change.anchor}"] if change.anchor else []
    if change.op in (Op.RENAME, Op.CREATE_CONTAINER):
        keys.append(f"dn:{normalize_dn(change.dn)}")
        if change.new_dn:
            keys.append(f"dn:{normalize_dn(change.new_dn)}")
        if change.op == Op.CREATE_CONTAINER and parent_dn(change.dn):
            keys.append(f"dn:{normalize_dn(parent_dn(change.dn))}")
    return keys or [f"change:{id(change)}"]


def _units(changes: list[Change], indexes: list[int]) -> list[Unit]:
    """Group one phase's changes into units of changes that share a resource (union-find)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    roots = []
    for i in indexes:
        keys = [find(k) for k in _resources(changes[i])]
        for k in keys[1:]:
            parent[k] = keys[0]
        roots.append(keys[0])
    units: dict[str, Unit] = {}
    for i, root in zip(indexes, roots, strict=True):
        units.setdefault(find(root), []).append(i)
    return list(units.values())


def without_failed_creates(change: Change, failed: dict[str, str]) -> tuple[Change, list[str]]:
    """The change without the member or manager values that name an object whose create failed in this run
    (`failed`: normalized DN -> anchor), and the values dropped."""
    def named(value: str) -> bool:
        if value.startswith("<"):
            return False  # <GUID=...>: an object the plan observed, never one it creates
        try:
            return normalize_dn(value) in failed
        except DNError:
            return False

    if not failed:
        return change, []
    if change.op == Op.ADD_MEMBERS:
        dropped = [m for m in change.members if named(m)]
        return replace(change, members=[m for m in change.members if not named(m)]), dropped
    if change.op == Op.MODIFY and any(k.lower() == "manager" for k in change.values):
        dropped = [v for k, vs in change.values.items() if k.lower() == "manager" for v in vs if named(v)]
        if dropped:
            values = {k: v for k, v in change.values.items() if k.lower() != "manager"}
            return replace(change, values=values), dropped
    return change, []


def _dropped_note(change: Change, dropped: list[str]) -> str:
    what = "members" if change.op == Op.ADD_MEMBERS else "manager"
    return (f"{what} left out, their create failed in this run (the DN may be another object's): "
            + "; ".join(dropped))


def plan_phases(changes: list[Change]) -> list[list[Unit]]:
    """The phases of a change list (runs of one operation, in list order), each as its units."""
    phases: list[list[int]] = []
    for i, change in enumerate(changes):
        if phases and changes[phases[-1][0]].op == change.op:
            phases[-1].append(i)
        else:
            phases.append([i])
    return [_units(changes, indexes) for indexes in phases]


class _Phase:
    """The units of one phase, handed out to workers one at a time.

    Where the phase addresses at least MIN_BATCHED_CHECKS objects created in this plan by DN, its units come
    in portions of at most FILTER_BATCH such changes whose GUIDs are read in one search (DomainWriter.
    created_guids) before their units are handed out: a worker reads the next portion, on its own connection,
    when fewer units are ready than there are workers and no other worker is reading (or none is ready at
    all), so the reads run beside the other workers' writes."""

    def __init__(self, changes: list[Change], units: list[Unit], workers: int):
        self.workers = workers
        self.lookups = sum(1 for unit in units for i in unit if _addressed_by_dn(changes[i]))
        self.batched = self.lookups >= MIN_BATCHED_CHECKS
        self._ready: deque[Unit] = deque(units if not self.batched else ())
        self._portions: Iterator[list[Unit]] = iter(_portions(changes, units) if self.batched else ())
        self._reading = 0
        self._changed = threading.Condition()
        self.read_seconds = 0.0

    def next_work(self) -> tuple[str, list] | None:
        """("write", a unit) or ("read", a portion whose GUIDs to read first), or None: the phase is done (no
        unit ready, none left to read, no read under way)."""
        with self._changed:
            while True:
                low = len(self._ready) < self.workers and not self._reading
                if (not self._ready or low) and (portion := next(self._portions, None)) is not None:
                    self._reading += 1
                    return READ, portion
                if self._ready:
                    return WRITE, self._ready.popleft()
                if not self._reading:
                    return None
                self._changed.wait()

    def read_done(self, portion: list[Unit], seconds: float) -> None:
        """The portion's GUIDs are read (or its read gave up): its units are ready."""
        with self._changed:
            self._ready.extend(portion)
            self._reading -= 1
            self.read_seconds += seconds
            self._changed.notify_all()


def _portions(changes: list[Change], units: list[Unit]) -> Iterator[list[Unit]]:
    """The units in order, cut into portions of at most FILTER_BATCH changes addressed by DN (a unit holding
    more is a portion of its own)."""
    portion: list[Unit] = []
    count = 0
    for unit in units:
        lookups = sum(1 for i in unit if _addressed_by_dn(changes[i]))
        if portion and count + lookups > FILTER_BATCH:
            yield portion
            portion, count = [], 0
        portion.append(unit)
        count += lookups
    if portion:
        yield portion


def _addressed_by_dn(change: Change) -> bool:
    """The change writes to an object created in this plan, found at its DN by the object's anchor."""
    return not change.guid and change.op in ADDRESSED_BY_DN_CHECKED


def address_created_objects(writer: DomainWriter, changes: list[Change], portion: list[Unit]) -> None:
    """Give the portion's changes to objects created in this plan (addressed by DN) the objectGUID of the
    object at their DN with their anchor, read in one search on the writer's connection
    (DomainWriter.created_guids): they are written by GUID without a read each. Runs within their phase, so
    every create they may name has finished. A change not found so is left to its write's own read."""
    indexes = [i for unit in portion for i in unit if _addressed_by_dn(changes[i])]
    if not indexes:
        return
    for position, guid in writer.created_guids([changes[i] for i in indexes]).items():
        changes[indexes[position]] = replace(changes[indexes[position]], guid=guid)


def apply_changes(
    make_writer: Callable[[], DomainWriter],
    changes: list[Change],
    connections: int = 1,
    progress_every: int = 1000,
    failed_creates: dict[str, str] | None = None,
) -> ApplySummary:
    """Apply `changes` with up to `connections` writers; results come back in plan order, with their
    positions in `changes` (`ApplySummary.indexes`).

    `failed_creates` (normalized DN -> anchor): creates that failed before, in an earlier batch of the same
    plan (apply/batches.py); values naming them are left out as those of a create failing here are.
    Raises ApplyAborted (carrying the results so far) when a writer gives up on the domain; the
    other workers stop after their current change.
    """
    changes = list(changes)  # address_created_objects gives some a GUID
    results: list[ApplyResult | None] = [None] * len(changes)
    phases = plan_phases(changes)
    workers = max(1, min(connections, max((len(p) for p in phases), default=1)))
    writers = [make_writer() for _ in range(workers)]
    stop = threading.Event()
    done = [0]
    done_lock = threading.Lock()
    failed_creates = dict(failed_creates or {})  # normalized DN -> anchor of each create that failed

    def drain(writer: DomainWriter, phase: _Phase) -> None:
        while not stop.is_set():
            work = phase.next_work()
            if work is None:
                return
            what, items = work
            if what == READ:  # a portion: read its GUIDs, then its units are ready
                started = time.perf_counter()
                try:
                    address_created_objects(writer, changes, items)
                except BaseException:
                    stop.set()
                    raise
                finally:
                    phase.read_done(items, time.perf_counter() - started)
                continue
            for i in items:
                if stop.is_set():
                    return
                apply_one(writer, i)

    def apply_one(writer: DomainWriter, i: int) -> None:
        change, dropped = without_failed_creates(changes[i], failed_creates)
        if dropped and not (change.members or change.values):
            result = ApplyResult(change.op, change.kind, change.anchor, change.dn, SKIPPED,
                                 message=_dropped_note(change, dropped))
        else:
            try:
                result = writer.apply(change)
            except BaseException:
                stop.set()
                raise
            if dropped:
                result = replace(result, message="; ".join(filter(None, [result.message,
                                                                         _dropped_note(change, dropped)])))
        results[i] = result
        if dropped:
            log.warning("%s %s %s: %s", change.op, change.kind, change.anchor, _dropped_note(change, dropped))
        if result.status == FAILED and change.op == Op.CREATE:
            with done_lock:
                failed_creates[normalize_dn(change.dn)] = change.anchor
        if result.status == FAILED:
            log.error("%s %s %s (%s) failed: LDAP code %s, %s", change.op, change.kind, change.anchor,
                      result.dn, result.result_code, result.message)
        with done_lock:
            done[0] += 1
            if done[0] % progress_every == 0:
                log.info("applied %d of %d changes", done[0], len(changes))

    # Each phase's operation, changes and seconds; when it read the objects it addresses by DN in batches, how
    # many it looked up and the seconds those reads took on the connections (summed: they run beside writes).
    ran: list[dict] = []

    def summary() -> ApplySummary:
        indexes = [i for i, r in enumerate(results) if r is not None]
        return ApplySummary([results[i] for i in indexes], indexes, list(ran))

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="domain-writer") as pool:
            for number, units in enumerate(phases, 1):
                started = time.perf_counter()
                phase = _Phase(changes, units, len(writers))
                futures = [pool.submit(drain, w, phase) for w in writers[:len(units)]]
                errors = [f.exception() for f in futures]
                aborted = next((e for e in errors if e is not None), None)
                if aborted is not None:
                    if isinstance(aborted, ApplyAborted):
                        aborted.summary = summary()
                    raise aborted
                op, count = changes[units[0][0]].op, sum(len(unit) for unit in units)
                ran.append({"op": str(op), "changes": count, "seconds": round(time.perf_counter() - started, 3)})
                read = ""
                if phase.batched:
                    ran[-1] |= {"looked_up": phase.lookups, "read_seconds": round(phase.read_seconds, 3)}
                    read = (f" (the GUIDs of {phase.lookups} objects created in this plan read in batches beside "
                            f"the writes: {phase.read_seconds:.1f} s of the connections' time)")
                log.info("apply: phase %d of %d done: %d %s changes in %.1f s%s", number, len(phases), count, op,
                         ran[-1]["seconds"], read)
    finally:
        for writer in writers:
            writer.close()
    return summary()
