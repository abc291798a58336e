"""A change set cut into batches, so that its apply can run as mapped tasks on several workers at once.

The phases (apply/phases.py) run one after the other, in the order the single apply task runs them
(runner.py: runs of one operation, with the deletes and modifies that free a name before the renames and
creates). Within a phase the changes are cut into batches of at most `batch_size` changes that never split
one of the runner's units (changes sharing an object or a DN, which must run in order on one connection),
so the batches of a phase share nothing and may run at once.

Files (runs.RunFolder): `apply_batches` lists each phase's batch ids with the plan's digest (written last, so
a listed batch always has its file); `apply_batch(id)` holds a batch's changes with their positions in the
plan; `apply_batch_results(id)` a batch's results by position, `complete` once every change has one. A
results file of another plan (digest) counts as none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from domain_sync.apply.phases import PHASE_NAMES, PHASES
from domain_sync.apply.runner import plan_phases
from domain_sync.apply.writer import ApplySummary
from domain_sync.dn import normalize_dn
from domain_sync.errors import PermanentError, StageInputMissing, UnknownName
from domain_sync.records import FAILED, ApplyResult, Change, Op
from domain_sync.runs import RunFolder
from domain_sync.storage import read_json, write_json_atomic

# Airflow's default [core] max_map_length is 1024 mapped instances per task: a phase is cut into at most half
# of that many batches of the target size (a unit larger than a batch makes a batch of its own).
MAX_BATCHES_PER_PHASE = 512


class PlanOrderUnsupported(PermanentError):
    """The plan's runs of one operation do not fit the phases in order (a plan this code did not make)."""


@dataclass
class Batch:
    phase: str
    number: int  # 1, 2, ... within the phase
    indexes: list[int]  # positions in the plan's change list, in the order they are applied

    @property
    def id(self) -> str:
        return f"{self.phase}-{self.number:04d}"


def phase_runs(changes: list[Change]) -> list[tuple[str, list[list[int]]]]:
    """The plan's runs of one operation (runner.plan_phases, as units), each with the phase it fills."""
    out = []
    slot = 0
    for units in plan_phases(changes):
        op = changes[units[0][0]].op
        while slot < len(PHASES) and PHASES[slot][1] != op:
            slot += 1
        if slot == len(PHASES):
            raise PlanOrderUnsupported(f"a run of {op} changes (change {units[0][0]}) comes after the phases that may "
                                       f"hold it ({', '.join(PHASE_NAMES)}); plan again")
        out.append((PHASES[slot][0], units))
        slot += 1
    return out


def cut_batches(changes: list[Change], batch_size: int) -> list[Batch]:
    """The change list as batches, phase by phase in apply order; within a phase, whole units in plan order,
    at most `batch_size` changes a batch (more only for a unit that is larger on its own)."""
    batches: list[Batch] = []
    for phase, units in phase_runs(changes):
        size = max(batch_size, math.ceil(sum(len(u) for u in units) / MAX_BATCHES_PER_PHASE))
        current: list[int] = []
        number = 0
        for unit in units:
            if current and len(current) + len(unit) > size:
                number += 1
                batches.append(Batch(phase, number, current))
                current = []
            current = current + unit
        if current:
            batches.append(Batch(phase, number + 1, current))
    return batches


def write_batches(run: RunFolder, digest: str | None, changes: list[Change], batches: list[Batch]) -> dict:
    """Write each batch's changes, then the list of batches (what the mapped tasks read); returns that list."""
    for batch in batches:
        write_json_atomic(run.apply_batch(batch.id), {
            "digest": digest, "phase": batch.phase,
            "changes": [{"index": i, "change": changes[i].to_json()} for i in batch.indexes]}, compact=True)
    index = {"digest": digest, "planned": len(changes),
             "phases": {name: [b.id for b in batches if b.phase == name] for name in PHASE_NAMES}}
    write_json_atomic(run.apply_batches, index)
    return index


def read_index(run: RunFolder) -> dict:
    index = read_json(run.apply_batches)
    if index is None:
        raise StageInputMissing(f"run {run.run_id}: no apply batches; apply_batches must run first")
    return index


def phase_batches(run: RunFolder, phase: str) -> list[str]:
    """The batch ids of one phase (what its mapped task expands over)."""
    if phase not in PHASE_NAMES:
        raise UnknownName(f"unknown apply phase {phase!r}; expected one of {PHASE_NAMES}")
    return list(read_index(run)["phases"].get(phase) or [])


def read_batch(run: RunFolder, batch: str) -> tuple[str | None, str, list[tuple[int, Change]]]:
    """(the plan's digest, the phase, [(position in the plan, change)]) of one batch."""
    data = read_json(run.apply_batch(batch))
    if data is None:
        raise StageInputMissing(f"run {run.run_id}: no apply batch {batch}; apply_batches must run first")
    return data["digest"], data["phase"], [(c["index"], Change.from_json(c["change"])) for c in data["changes"]]


def read_batch_results(run: RunFolder, batch: str, digest: str | None) -> dict | None:
    """A batch's results file when it is of this plan: {"complete", "aborted"?, "results": {position: ApplyResult}}."""
    data = read_json(run.apply_batch_results(batch))
    if data is None or data.get("digest") != digest:
        return None
    return data | {"results": {int(r.pop("index")): ApplyResult(**r) for r in data.get("results") or []}}


def write_batch_results(run: RunFolder, batch: str, digest: str | None, results: dict[int, ApplyResult],
                        complete: bool, aborted: str | None = None) -> None:
    data = {"digest": digest, "batch": batch, "complete": complete,
            "results": [{"index": i, **asdict(r)} for i, r in sorted(results.items())]}
    write_json_atomic(run.apply_batch_results(batch), data | ({"aborted": aborted} if aborted else {}), compact=True)


def failed_creates_before(run: RunFolder, phase: str, digest: str | None) -> dict[str, str]:
    """{normalized DN: anchor} of the creates that failed in the batches of the phases before `phase`: the
    member and manager values naming them are left out (runner.without_failed_creates)."""
    index = read_index(run)
    failed: dict[str, str] = {}
    for name, op in PHASES[:PHASE_NAMES.index(phase)]:
        if op != Op.CREATE:  # only the creates phase can hold a failed create
            continue
        for batch in index["phases"].get(name) or []:
            data = read_batch_results(run, batch, digest) or {}
            for r in (data.get("results") or {}).values():
                if r.op == Op.CREATE and r.status == FAILED:
                    failed[normalize_dn(r.dn)] = r.anchor
    return failed


def merge_results(run: RunFolder, digest: str | None) -> tuple[ApplySummary, list[str], int]:
    """(every batch's results in plan order, what keeps them from covering the plan, the number of batches).
    Covering the plan: every listed batch has complete results of this plan, and every change one result."""
    index = read_index(run)
    problems = []
    if index.get("digest") != digest:
        problems.append(f"the batches were cut from another plan (digest {index.get('digest')})")
    results: dict[int, ApplyResult] = {}
    batches = [b for name in PHASE_NAMES for b in index["phases"].get(name) or []]
    for batch in batches:
        data = read_batch_results(run, batch, digest)
        if data is None:
            problems.append(f"batch {batch} has no results")
            continue
        mine = {i for i, _ in read_batch(run, batch)[2]}
        results.update({i: r for i, r in data["results"].items() if i in mine})
        if data.get("aborted"):
            problems.append(f"batch {batch} was aborted ({data['aborted']})")
        elif not data.get("complete") or not mine <= data["results"].keys():
            problems.append(f"batch {batch} did not finish")
    missing = index.get("planned", 0) - len(results.keys() & set(range(index.get("planned", 0))))
    if missing and not problems:
        problems.append(f"{missing} planned changes have no result")
    order = sorted(results)
    return ApplySummary([results[i] for i in order], order), problems, len(batches)
