"""The apply cut into batches for mapped tasks: phases in the order the single apply runs them (name-freeing
deletes and modifies first), whole runner units per batch, at most N changes a batch; each batch's results
in its own file, merged by apply; a retried batch writes nothing twice."""

from __future__ import annotations

import pytest

from domain_sync.apply import stage as apply_stage
from domain_sync.apply.batches import (
    MAX_BATCHES_PER_PHASE,
    PlanOrderUnsupported,
    cut_batches,
    phase_batches,
    read_batch_results,
)
from domain_sync.apply.phases import BATCH_PARAM, MERGE_PARAM, PHASE_NAMES
from domain_sync.apply.runner import plan_phases
from domain_sync.apply.writer import ApplyAborted
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.domain import DomainEndpoint
from domain_sync.errors import UnknownName
from domain_sync.pipeline import run_stage
from domain_sync.plan.changeset import plan_changes
from domain_sync.records import APPLIED, FAILED, SKIPPED, ApplyResult, Change, ChangeSet, Op
from domain_sync.runs import RunFolder
from domain_sync.state import ApplyIncomplete, StateStore, commit_run
from domain_sync.storage import children, read_json, remove, write_bytes, write_json_atomic
from tests.unit.test_changeset import ANCHOR, U1, U2, C, inputs, observed, observed_user, user


def anchor(n: int) -> str:
    return f"aaaaaaaa-0000-0000-0000-{n:012d}"


def change(op: Op, n: int, **kw) -> Change:
    return Change(op, "user", anchor(n), f"CN=u{n},{C}", **kw)


def phases_of(batches) -> list[str]:
    """The phases of the batches, each once, in the order the batches come."""
    return list(dict.fromkeys(b.phase for b in batches))


# -- cutting ---------------------------------------------------------------------------------------------------
def test_phases_keep_the_single_apply_order_and_batches_hold_at_most_n_changes():
    changes = ([Change(Op.CREATE_CONTAINER, "container", "", f"OU=Sub,{C}")]
               + [change(Op.CREATE, n) for n in range(45)]
               + [change(Op.MODIFY, n, values={"manager": ["x"]}) for n in range(3)]
               + [Change(Op.ADD_MEMBERS, "group", anchor(100), f"CN=G,{C}", members=["a"])]
               + [change(Op.DELETE, n) for n in range(200, 205)])
    batches = cut_batches(changes, 20)
    assert phases_of(batches) == ["containers", "creates", "modifies", "member_adds", "deletes"]
    assert [len(b.indexes) for b in batches if b.phase == "creates"] == [20, 20, 5]
    assert [b.id for b in batches if b.phase == "creates"] == ["creates-0001", "creates-0002", "creates-0003"]
    # Every change in exactly one batch; a phase's batches hold exactly the runner's phase.
    assert sorted(i for b in batches for i in b.indexes) == list(range(len(changes)))
    runner_phases = [sorted(i for unit in units for i in unit) for units in plan_phases(changes)]
    batch_phases = [sorted(i for b in batches if b.phase == p for i in b.indexes) for p in phases_of(batches)]
    assert batch_phases == runner_phases


def test_a_small_change_set_is_one_batch_a_phase():
    changes = [change(Op.CREATE, n) for n in range(5)] + [change(Op.DELETE, n) for n in range(10, 13)]
    assert [(b.id, len(b.indexes)) for b in cut_batches(changes, 1000)] == [("creates-0001", 5), ("deletes-0001", 3)]
    assert cut_batches([], 1000) == []


def test_name_freeing_deletes_and_modifies_get_the_phases_before_renames_and_creates():
    """A delete freeing a name a create takes, and a modify freeing a UPN another object takes, run before the
    renames and creates (plan/changeset.py); the batches keep them there, in their own phases."""
    gone = observed_user(anchor(9), "ana", display="Old Ana")
    ana, bob = observed_user(U1, "ann", display="Ann"), observed_user(U2, "bob", display="Bob")
    ana.attributes["userprincipalname"] = ["x@corp.example.test"]
    records = [user(U1, "ann", upn="y@corp.example.test", display="Ann L."),
               user(U2, "bob", upn="x@corp.example.test", display="Bob"),
               user(anchor(7), "ana", display="New Ana")]
    cs, collisions = plan_changes(inputs(records), observed(
        [gone, ana, bob], names={"ana": gone.dn, "ann": ana.dn, "bob": bob.dn},
        upns={"ana@corp.example.test": gone.dn, "x@corp.example.test": ana.dn, "bob@corp.example.test": bob.dn}),
        ANCHOR)
    assert not collisions
    batches = cut_batches(cs.changes, 1)
    where = {(cs.changes[i].op, cs.changes[i].anchor, tuple(sorted(cs.changes[i].values))): b.phase
             for b in batches for i in b.indexes}
    assert where[("delete", anchor(9), ())] == "deletes_freeing_names"
    assert where[("modify", U1, ("userPrincipalName",))] == "modifies_freeing_names"
    assert where[("rename", U1, ())] == "renames"
    assert where[("create", anchor(7), tuple(sorted(next(c for c in cs.changes if c.op == "create").values)))] \
        == "creates"
    assert where[("modify", U2, ("userPrincipalName",))] == "modifies"
    order = [PHASE_NAMES.index(b.phase) for b in batches]
    assert order == sorted(order), "a batch of a later phase comes before one of an earlier phase"


def test_renames_that_depend_on_each_other_stay_in_one_batch_in_order():
    """A name swap (through a temporary name) and a rename chain are runner units: never split over batches
    that run at once, whatever the batch size."""
    a, b = observed_user(U1, "ana", display="Ana"), observed_user(U2, "bob", display="Bob")
    x, y = observed_user(anchor(3), "x", display="Alpha"), observed_user(anchor(4), "y", display="Beta")
    cs, _ = plan_changes(inputs([user(U1, "ana", display="Bob"), user(U2, "bob", display="Ana"),
                                 user(anchor(3), "x", display="Beta"), user(anchor(4), "y", display="Gamma")]),
                         observed([a, b, x, y]), ANCHOR)
    renames = [b for b in cut_batches(cs.changes, 1) if b.phase == "renames"]
    steps = [[(cs.changes[i].anchor, cs.changes[i].new_dn.split(",")[0]) for i in b.indexes] for b in renames]
    assert sorted(steps) == sorted([
        [(U1, f"CN=renaming {U1}"), (U2, "CN=Ana"), (U1, "CN=Bob")],
        [(anchor(4), "CN=Gamma"), (anchor(3), "CN=Beta")],
    ])


def test_a_huge_phase_is_cut_into_no_more_batches_than_airflow_maps():
    changes = [change(Op.MODIFY, n, values={"title": ["t"]}) for n in range(MAX_BATCHES_PER_PHASE * 3)]
    batches = cut_batches(changes, 1)
    assert len(batches) == MAX_BATCHES_PER_PHASE and {len(b.indexes) for b in batches} == {3}


def test_a_plan_out_of_phase_order_is_refused():
    with pytest.raises(PlanOrderUnsupported):
        cut_batches([change(Op.CREATE, 1), Change(Op.CREATE_CONTAINER, "container", "", f"OU=Sub,{C}")], 10)


# -- running the batches ---------------------------------------------------------------------------------------
class Domain:
    """A fake domain: records every change written; refuses (code 68) the anchors in `refuse`, and goes away
    (ApplyAborted) at the anchors in `away` until they are removed."""

    def __init__(self):
        self.written: list[tuple[str, str]] = []
        self.refuse: set[str] = set()
        self.away: set[str] = set()
        self.closed = 0

    def make_writer(self):
        domain = self

        class Writer:
            def apply(self, c: Change) -> ApplyResult:
                if c.anchor in domain.away:
                    raise ApplyAborted(f"{c.anchor}: the domain stayed unavailable")
                if c.anchor in domain.refuse:
                    return ApplyResult(c.op, c.kind, c.anchor, c.dn, FAILED, 68, "entryAlreadyExists")
                domain.written.append((c.op, c.anchor))
                return ApplyResult(c.op, c.kind, c.anchor, c.new_dn or c.dn, APPLIED, 0, "",
                                   len(c.members) if c.members else 1)

            def close(self):
                domain.closed += 1

        return Writer()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DOMAIN_SYNC_APPLY_BATCH_SIZE", "3")
    domain = Domain()
    monkeypatch.setattr(apply_stage, "_writers", lambda ctx: domain.make_writer)
    return domain


def planned_run(run_id: str, changes: list[Change]) -> RunFolder:
    settings = Settings.from_env()
    run = RunFolder(settings.runs_dir, run_id)
    write_json_atomic(run.state_read, {"version": None})
    write_json_atomic(run.delta_link("users"), {"link": "u"})
    for frame in ("users", "groups", "members"):
        write_bytes(run.snapshot(frame), b"")
    write_json_atomic(run.plan, ChangeSet(changes, {}).to_json() | {"status": "clear", "digest": f"d-{run_id}",
                                                                    "synced_in_domain": {"user": 100}})
    return run


def ctx(run: RunFolder, **params) -> StageContext:
    return StageContext(Settings.from_env(), run, params,
                        endpoint_factory=lambda s: DomainEndpoint("dc", 636, "cn=x", "pw", C))


def run_batched(run: RunFolder, skip: tuple[str, ...] = ()) -> dict:
    """As the DAG runs them: apply_batches, each phase's batches (in order), then apply merging them."""
    apply_stage.prepare_batches(ctx(run))
    for phase in PHASE_NAMES:
        for batch in phase_batches(run, phase):
            if batch not in skip:
                apply_stage.run_batch(ctx(run, **{BATCH_PARAM: batch}))
    return apply_stage.run(ctx(run, **{MERGE_PARAM: True}))


def mixed_changes() -> list[Change]:
    return ([change(Op.DELETE, 90)]
            + [change(Op.CREATE, n) for n in range(7)]
            + [change(Op.MODIFY, n, values={"manager": [f"CN=u{n + 1},{C}"]}) for n in range(4)]
            + [Change(Op.ADD_MEMBERS, "group", anchor(100), f"CN=G,{C}", members=[f"CN=u{n},{C}" for n in range(7)])]
            + [change(Op.DISABLE, n, values={"userAccountControl": ["514"]}) for n in range(20, 25)]
            + [change(Op.DELETE, n) for n in range(30, 34)])


def test_batched_apply_writes_every_change_once_and_merges_what_the_single_apply_reports(env):
    batched = run_batched(planned_run("batched", mixed_changes()))
    assert sorted(env.written) == sorted((c.op, c.anchor) for c in mixed_changes())
    assert len(env.written) == len(set(env.written))
    env.written.clear()
    single = apply_stage.run(ctx(planned_run("single", mixed_changes())))
    # The same summary but for the phases' times: a single apply times each phase it runs; a batched one
    # runs each phase as mapped tasks, whose own durations are those times, and claims none of its own.
    assert {k: v for k, v in batched.items() if k != "batches"} == {k: v for k, v in single.items() if k != "phases"}
    assert [p["op"] for p in single["phases"]][:2] == ["delete", "create"] and "phases" not in batched
    run = RunFolder(Settings.from_env().runs_dir, "batched")
    assert {p: len(phase_batches(run, p)) for p in PHASE_NAMES if phase_batches(run, p)} == {
        "deletes_freeing_names": 1, "creates": 3, "modifies": 2, "member_adds": 1, "disables": 2, "deletes": 2}
    assert batched["batches"] == 11


def test_a_retried_batch_writes_nothing_twice(env):
    run = planned_run("r1", [change(Op.CREATE, n) for n in range(3)])
    apply_stage.prepare_batches(ctx(run))
    [batch] = phase_batches(run, "creates")
    env.away = {anchor(2)}  # the domain goes away at the third create
    with pytest.raises(ApplyAborted):
        apply_stage.run_batch(ctx(run, **{BATCH_PARAM: batch}))
    kept = read_batch_results(run, batch, "d-r1")
    assert kept["complete"] is False and kept["aborted"] and sorted(kept["results"]) == [0, 1]
    env.away = set()
    retried = apply_stage.run_batch(ctx(run, **{BATCH_PARAM: batch}))  # Airflow's retry of the mapped task
    assert env.written == [("create", anchor(n)) for n in range(3)]  # the first two were not written again
    assert retried["changes"] == 3 and retried["statuses"] == {APPLIED: 3}
    again = apply_stage.run_batch(ctx(run, **{BATCH_PARAM: batch}))  # cleared by hand once it succeeded
    assert again["already_applied"] and again["total_writes"] == 0 and len(env.written) == 3
    assert apply_stage.run(ctx(run, **{MERGE_PARAM: True}))["statuses"] == {APPLIED: 3}


def test_a_batch_that_did_not_run_stops_the_merge_and_commit_refuses_the_run(env):
    run = planned_run("r1", [change(Op.CREATE, n) for n in range(7)])
    with pytest.raises(ApplyIncomplete, match="creates-0002 has no results"):
        run_batched(run, skip=("creates-0002",))
    assert "creates-0002" in read_json(run.apply_results)["aborted"]
    with pytest.raises(ApplyIncomplete):
        commit_run(StateStore(Settings.from_env().state_dir), run)


def test_results_of_another_plan_count_as_none(env):
    run = planned_run("r1", [change(Op.CREATE, n) for n in range(2)])
    run_batched(run)
    written = list(env.written)
    planned_run("r1", [change(Op.CREATE, n) for n in range(2)] + [change(Op.MODIFY, 5, values={"title": ["t"]})])
    plan = read_json(run.plan)
    write_json_atomic(run.plan, plan | {"digest": "another"})  # planned again: another change set
    summary = run_batched(run)
    assert summary["planned"] == 3 and env.written == written + [("create", anchor(0)), ("create", anchor(1)),
                                                                 ("modify", anchor(5))]


def test_a_create_that_failed_in_an_earlier_batch_is_left_out_of_later_member_adds(env):
    env.refuse = {anchor(1)}
    changes = ([change(Op.CREATE, n) for n in range(3)]
               + [Change(Op.ADD_MEMBERS, "group", anchor(100), f"CN=G,{C}", members=[f"CN=u{n},{C}" for n in range(3)]),
                  Change(Op.ADD_MEMBERS, "group", anchor(101), f"CN=H,{C}", members=[f"CN=u1,{C}"])])
    summary = run_batched(planned_run("r1", changes))
    assert summary["statuses"] == {APPLIED: 3, FAILED: 1, SKIPPED: 1}
    assert [n["anchor"] for n in summary["notes"]] == [anchor(100), anchor(101)]
    assert "u1" in summary["notes"][0]["message"]


def test_a_dry_run_cuts_no_batches_and_apply_reports_the_dry_run(env):
    run = planned_run("r1", [change(Op.CREATE, n) for n in range(4)])
    assert apply_stage.prepare_batches(ctx(run, dry_run=True))["batches"] == {}
    assert all(phase_batches(run, p) == [] for p in PHASE_NAMES)
    summary = apply_stage.run(ctx(run, dry_run=True, **{MERGE_PARAM: True}))
    assert summary["dry_run"] is True and env.written == []


def test_every_phase_is_listed_even_when_empty(env):
    run = planned_run("r1", [change(Op.DELETE, 1)])
    apply_stage.prepare_batches(ctx(run))
    assert set(read_json(run.apply_batches)["phases"]) == set(PHASE_NAMES)
    assert [p for p in PHASE_NAMES if phase_batches(run, p)] == ["deletes_freeing_names"]


def test_a_batch_cut_again_with_another_size_writes_its_changes_whatever_an_earlier_cut_left(env, monkeypatch):
    run = planned_run("r1", [change(Op.CREATE, n) for n in range(6)])
    run_batched(run)  # batches of 3: creates-0001 holds changes 0-2
    env.written.clear()
    monkeypatch.setenv("DOMAIN_SYNC_APPLY_BATCH_SIZE", "6")  # apply_batches cleared and run again, one batch now
    remove(run.apply_batch_results("creates-0002"))
    summary = run_batched(run)
    assert sorted(env.written) == [("create", anchor(n)) for n in range(3, 6)] and summary["statuses"] == {APPLIED: 6}


def test_each_batch_task_ends_with_its_own_summary_section(env):
    """The batches of a phase end at once, maybe on different machines: each writes a summary file of its own
    (summary/apply_batch.<batch>.json), and the run's summary composes them."""
    run = planned_run("r1", [change(Op.CREATE, n) for n in range(5)])
    run_stage("apply_batches", "r1", {})
    for batch in phase_batches(run, "creates"):
        run_stage("apply_batch", "r1", {BATCH_PARAM: batch})
    names = sorted(p.name for p in children(run.summary_dir))
    assert names == ["apply_batch.creates-0001.json", "apply_batch.creates-0002.json", "apply_batches.json"]
    summary = run.summary()
    assert [summary[f"apply_batch.creates-000{n}"]["changes"] for n in (1, 2)] == [3, 2]
    with pytest.raises(UnknownName):
        run_stage("apply_batch", "r1", {BATCH_PARAM: "../creates-0001"})
    assert sorted(p.name for p in children(run.summary_dir)) == names
