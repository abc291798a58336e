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
    """The units of one phase, handed out to workers one at a time."""

    def __init__(self, units: list[Unit]):
        self._units: Iterator[Unit] = iter(units)
        self._lock = threading.Lock()

    def next_unit(self) -> Unit | None:
        with self._lock:
            return next(self._units, None)


def address_created_objects(writers: list[DomainWriter], pool: ThreadPoolExecutor, changes: list[Change],
                            indexes: list[int]) -> int:
    """Give the phase's changes to objects created in this plan (addressed by DN) the objectGUID of the object
    at their DN with their anchor, read in batches (DomainWriter.created_guids): they are written by GUID
    without a read each. Runs between phases, so every create the phase may name has finished; the batches
    of FILTER_BATCH changes are read over every writer's connection at once (one writer reads its share in
    turn: a connection is not thread-safe). Returns how many changes it looked up (0: none read in a batch)."""
    indexes = [i for i in indexes if not changes[i].guid and changes[i].op in ADDRESSED_BY_DN_CHECKED]
    if len(indexes) < MIN_BATCHED_CHECKS:
        return 0
    pieces = [indexes[start:start + FILTER_BATCH] for start in range(0, len(indexes), FILTER_BATCH)]
    shares = [pieces[k::len(writers)] for k in range(min(len(writers), len(pieces)))]

    def read_share(writer: DomainWriter, share: list[list[int]]) -> list[tuple[int, str]]:
        found = []
        for piece in share:
            found += [(piece[position], guid) for position, guid in
                      writer.created_guids([changes[i] for i in piece]).items()]
        return found

    for found in pool.map(read_share, writers, shares):
        for i, guid in found:
            changes[i] = replace(changes[i], guid=guid)
    return len(indexes)


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
            unit = phase.next_unit()
            if unit is None:
                return
            for i in unit:
                if stop.is_set():
                    return
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

    # Each phase's operation, changes and seconds, the batched read of the objects it addresses by DN included
    # (how many it looked up and the read's own seconds, when it read any).
    ran: list[dict] = []

    def summary() -> ApplySummary:
        indexes = [i for i, r in enumerate(results) if r is not None]
        return ApplySummary([results[i] for i in indexes], indexes, list(ran))

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="domain-writer") as pool:
            for number, units in enumerate(phases, 1):
                started = time.perf_counter()
                looked_up = address_created_objects(writers, pool, changes, [i for unit in units for i in unit])
                read_seconds = time.perf_counter() - started
                phase = _Phase(units)
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
                if looked_up:
                    ran[-1] |= {"looked_up": looked_up, "read_seconds": round(read_seconds, 3)}
                    read = (f" (of which {read_seconds:.1f} s reading the GUIDs of {looked_up} objects created "
                            f"in this plan)")
                log.info("apply: phase %d of %d done: %d %s changes in %.1f s%s", number, len(phases), count, op,
                         ran[-1]["seconds"], read)
    finally:
        for writer in writers:
            writer.close()
    return summary()
