"""The apply runner: phases in plan order, objects of one phase in parallel, one object's changes in order."""

from __future__ import annotations

import threading
import time

import pytest

from domain_sync.apply.runner import apply_changes, plan_phases
from domain_sync.apply.writer import FILTER_BATCH, ApplyAborted
from domain_sync.records import (
    APPLIED,
    ApplyResult,
    Change,
    Op,
)

C = "OU=Sync,DC=corp,DC=example,DC=test"


class FakeWriter:
    """Records what it applied, when, and on which thread; refuses to be used by two threads at once."""

    def __init__(self, log: list, lock: threading.Lock, delay: float = 0.0, abort_on: str | None = None):
        self.log, self.lock, self.delay, self.abort_on = log, lock, delay, abort_on
        self.busy = threading.Lock()
        self.closed = False
        self.applied: list[Change] = []
        self.found: dict[str, str] = {}
        self.batched: list[list[str]] = []

    def apply(self, change: Change) -> ApplyResult:
        assert self.busy.acquire(blocking=False), "one connection used by two threads at once"
        try:
            if change.anchor == self.abort_on:
                raise ApplyAborted("the domain stayed unavailable")
            start = time.monotonic()
            time.sleep(self.delay)
            with self.lock:
                self.log.append((change, start, time.monotonic(), id(self)))
            self.applied.append(change)
            writes = len(change.members) if change.members else 1
            return ApplyResult(change.op, change.kind, change.anchor, change.dn, APPLIED, 0, "", writes)
        finally:
            self.busy.release()

    def created_guids(self, changes: list[Change]) -> dict[int, str]:
        """The batched read of the objects created in this plan: each one named in `found` is there."""
        assert self.busy.acquire(blocking=False), "one connection used by two threads at once"
        try:
            time.sleep(self.delay)
            self.batched.append([c.anchor for c in changes])
            return {i: self.found[c.anchor] for i, c in enumerate(changes) if c.anchor in self.found}
        finally:
            self.busy.release()

    def close(self) -> None:
        self.closed = True


def run(changes, connections=4, delay=0.01, abort_on=None):
    log: list = []
    lock = threading.Lock()
    writers: list[FakeWriter] = []

    def make():
        writers.append(FakeWriter(log, lock, delay, abort_on))
        return writers[-1]

    summary = apply_changes(make, changes, connections=connections)
    return summary, log, writers


def user(op, n, **kw):
    return Change(op, "user", f"u{n}", f"CN=User {n},{C}", **kw)


def test_phases_never_overlap_and_keep_plan_order():
    changes = ([Change(Op.CREATE_CONTAINER, "container", "", C)]
               + [user(Op.CREATE, n) for n in range(12)]
               + [user(Op.MODIFY, n) for n in range(12)]
               + [Change(Op.ADD_MEMBERS, "group", "g1", f"CN=G,{C}", members=["x"])]
               + [user(Op.DELETE, n) for n in range(12, 20)])
    _, log, _ = run(changes)
    by_op: dict[str, list] = {}
    for change, start, end, _ in log:
        by_op.setdefault(change.op, []).append((start, end))
    ops = [Op.CREATE_CONTAINER, Op.CREATE, Op.MODIFY, Op.ADD_MEMBERS, Op.DELETE]
    for earlier, later in zip(ops, ops[1:], strict=False):
        assert max(e for _, e in by_op[earlier]) <= min(s for s, _ in by_op[later]), f"{later} began too early"


def test_each_phase_is_reported_with_its_changes_and_time_in_the_summary_and_the_log(caplog):
    changes = ([user(Op.CREATE, n) for n in range(8)]
               + [Change(Op.ADD_MEMBERS, "group", "g1", f"CN=G,{C}", members=["x"]) for _ in range(3)]
               + [user(Op.DELETE, n) for n in range(8, 10)])
    with caplog.at_level("INFO", logger="domain_sync.apply.runner"):
        summary, _, _ = run(changes, connections=4, delay=0.02)
    assert [(p["op"], p["changes"]) for p in summary.phases] == [("create", 8), ("add_members", 3), ("delete", 2)]
    # A phase's time holds its writes: 8 creates over 4 connections are 2 rounds of 20 ms at least, the one
    # group's 3 adds run in order on one connection (60 ms at least), the 2 deletes in parallel (20 ms).
    assert [p["seconds"] >= low for p, low in zip(summary.phases, (0.04, 0.06, 0.02), strict=True)] == [True] * 3
    assert summary.to_json()["phases"] == summary.phases
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("apply: phase")]
    assert lines[1].startswith("apply: phase 2 of 3 done: 3 add_members changes in ")


def test_a_phase_says_how_long_its_read_of_the_objects_created_in_the_plan_took(caplog):
    created = [user(Op.CREATE, n) for n in range(30)]
    managers = [user(Op.MODIFY, n, values={"manager": [f"CN=User {n + 1},{C}"]}) for n in range(29)]
    deleted = [Change(Op.DELETE, "user", "u99", "<GUID=x>", guid="x")]
    with caplog.at_level("INFO", logger="domain_sync.apply.runner"):
        summary, _, writers = run(created + managers + deleted, connections=2, delay=0.02)
    create, modify, delete = summary.phases
    assert "read_seconds" not in create and "read_seconds" not in delete  # nothing addressed by DN to read
    # The 29 modifies address objects created in this plan: one batch of FILTER_BATCH, read by one writer.
    assert modify["looked_up"] == 29 and sum(len(w.batched) for w in writers) == 1
    assert 0.02 <= modify["read_seconds"] <= modify["seconds"]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("apply: phase 2 of 3"))
    assert line.endswith(f"(of which {modify['read_seconds']:.1f} s reading the GUIDs of 29 objects created in "
                         "this plan)")


def test_a_writer_giving_up_keeps_the_phases_that_finished():
    changes = [Change(Op.CREATE_CONTAINER, "container", "", C)] + [user(Op.CREATE, n) for n in range(50)]
    with pytest.raises(ApplyAborted) as caught:
        run(changes, connections=4, delay=0.005, abort_on="u20")
    assert [(p["op"], p["changes"]) for p in caught.value.summary.phases] == [("create_container", 1)]


def test_changes_of_different_objects_run_in_parallel_on_their_own_connections():
    changes = [user(Op.CREATE, n) for n in range(40)]
    started = time.monotonic()
    summary, log, writers = run(changes, connections=4, delay=0.02)
    elapsed = time.monotonic() - started
    assert len(writers) == 4 and all(w.closed for w in writers)
    assert all(w.applied for w in writers), "every connection did a share of the work"
    assert elapsed < 40 * 0.02 / 2, f"not parallel: {elapsed:.2f}s for 40 changes of 20 ms"
    assert [r.anchor for r in summary.results] == [c.anchor for c in changes], "results in plan order"


def test_batches_of_one_group_stay_in_order_on_one_connection():
    batches = [Change(Op.ADD_MEMBERS, "group", "g1", f"CN=G1,{C}", members=[f"m{i}"]) for i in range(6)]
    others = [Change(Op.ADD_MEMBERS, "group", f"g{n}", f"CN=G{n},{C}", members=["x"]) for n in range(2, 10)]
    _, log, _ = run([batches[0], *others[:4], *batches[1:], *others[4:]], connections=4)
    g1 = [(change.members[0], start, writer) for change, start, _, writer in log if change.anchor == "g1"]
    assert [m for m, _, _ in sorted(g1, key=lambda x: x[1])] == [f"m{i}" for i in range(6)]
    assert len({writer for _, _, writer in g1}) == 1


def test_renames_into_a_name_another_rename_frees_stay_in_plan_order():
    # u1 leaves "CN=Ana" and u2 takes it: run in parallel, u2 could find the name still taken.
    free = Change(Op.RENAME, "user", "u1", f"CN=Ana,{C}", new_dn=f"CN=Ana (1111),{C}")
    take = Change(Op.RENAME, "user", "u2", f"CN=Ana B,{C}", new_dn=f"CN=Ana,{C}")
    unrelated = [Change(Op.RENAME, "user", f"u{n}", f"CN=X{n},{C}", new_dn=f"CN=Y{n},{C}") for n in range(3, 9)]
    units = plan_phases([free, *unrelated, take])[0]
    together = [u for u in units if 0 in u]
    assert together == [[0, 7]]
    assert len(units) == 7


def test_nested_containers_are_created_outermost_first():
    outer = Change(Op.CREATE_CONTAINER, "container", "", f"OU=Outer,{C}")
    inner = Change(Op.CREATE_CONTAINER, "container", "", f"OU=Inner,OU=Outer,{C}")
    assert plan_phases([outer, inner]) == [[[0, 1]]]


def test_writes_are_counted_per_kind_as_in_a_serial_run():
    changes = ([user(Op.CREATE, n) for n in range(30)]
               + [Change(Op.ADD_MEMBERS, "group", "g1", f"CN=G1,{C}", members=[f"m{i}" for i in range(7)])]
               + [user(Op.DELETE, n) for n in range(30, 35)])
    parallel, _, _ = run(changes, connections=4, delay=0)
    serial, _, _ = run(changes, connections=1, delay=0)
    assert parallel.writes == serial.writes == {"user.create": 30, "group.add_members": 7, "user.delete": 5}


def test_a_writer_giving_up_stops_the_others_and_keeps_the_results_so_far():
    changes = [user(Op.CREATE, n) for n in range(200)]
    with pytest.raises(ApplyAborted) as caught:
        run(changes, connections=4, delay=0.005, abort_on="u20")
    partial = caught.value.summary
    assert partial is not None and 15 <= len(partial.results) < 60
    assert all(r.status == APPLIED for r in partial.results)


def test_writes_to_objects_created_in_the_plan_are_addressed_by_the_guid_one_batched_read_finds():
    groups = [Change(Op.CREATE, "group", f"g{n}", f"CN=G{n},{C}") for n in range(12)]
    adds = [Change(Op.ADD_MEMBERS, "group", f"g{n}", f"CN=G{n},{C}", members=[f"CN=U,{C}"]) for n in range(12)]
    log: list = []
    writers: list[FakeWriter] = []

    def make():
        writers.append(FakeWriter(log, threading.Lock()))
        writers[-1].found = {f"g{n}": f"00000000-0000-4000-8000-{n:012d}" for n in range(11)}  # g11: not there
        return writers[-1]

    apply_changes(make, groups + adds, connections=2)
    assert [b for w in writers for b in w.batched] == [[f"g{n}" for n in range(12)]]  # the adds' phase, once
    applied = {c.anchor: c.guid for c, *_ in log if c.op == Op.ADD_MEMBERS}
    assert applied == {**{f"g{n}": f"00000000-0000-4000-8000-{n:012d}" for n in range(11)}, "g11": None}


def test_the_batched_reads_of_a_big_phase_run_over_every_connection_at_once():
    n = 2 * FILTER_BATCH + 50
    users = [user(Op.CREATE, i) for i in range(n)]
    managers = [user(Op.MODIFY, i, values={"manager": [f"CN=User 0,{C}"]}) for i in range(n)]
    log: list = []
    writers: list[FakeWriter] = []

    def make():
        writers.append(FakeWriter(log, threading.Lock(), delay=0.001))
        writers[-1].found = {f"u{i}": f"00000000-0000-4000-8000-{i:012d}" for i in range(n) if i != 7}
        return writers[-1]

    apply_changes(make, users + managers, connections=3)
    reads = [b for w in writers for b in w.batched]
    assert sorted(len(b) for b in reads) == [50, FILTER_BATCH, FILTER_BATCH]
    assert sum(bool(w.batched) for w in writers) == 3  # each batch on a connection of its own
    assert sorted(a for b in reads for a in b) == sorted(f"u{i}" for i in range(n))
    applied = {c.anchor: c.guid for c, *_ in log if c.op == Op.MODIFY}
    assert applied == {f"u{i}": None if i == 7 else f"00000000-0000-4000-8000-{i:012d}" for i in range(n)}


def test_a_few_writes_to_created_objects_read_their_dn_each():
    groups = [Change(Op.CREATE, "group", f"g{n}", f"CN=G{n},{C}") for n in range(3)]
    adds = [Change(Op.ADD_MEMBERS, "group", f"g{n}", f"CN=G{n},{C}", members=[f"CN=U,{C}"]) for n in range(3)]
    summary, log, writers = run(groups + adds)
    assert not any(w.batched for w in writers)
    assert all(c.guid is None for c, *_ in log)
