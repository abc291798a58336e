"""Apply measures its failure share against the objects the sync owns in the domain, not the plan's size: a
small plan with an object the domain refuses goes through (and commits); too many failing objects stop the run,
marked in the results so commit refuses it."""

from __future__ import annotations

import json

import pytest

from domain_sync.apply import stage as apply_stage
from domain_sync.apply.writer import ApplySummary
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.domain import DomainEndpoint
from domain_sync.records import APPLIED, FAILED, ApplyResult, Change, ChangeSet, Op
from domain_sync.runs import RunFolder, read_json, write_json_atomic
from domain_sync.state import ApplyIncomplete, StateStore, commit_run

C = "OU=Sync,DC=corp,DC=example,DC=test"


def anchor(n: int) -> str:
    return f"aaaaaaaa-0000-0000-0000-{n:012d}"


def apply_run(tmp_path, monkeypatch, synced_in_domain, changes, failing):
    """The apply stage over `changes`, the domain answering code 19 for the anchors in `failing`."""
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DOMAIN_SYNC_MAX_APPLY_FAILURE_SHARE", "0.05")
    settings = Settings.from_env()
    run = RunFolder(settings.runs_dir, "r1")
    write_json_atomic(run.state_read, {"version": None})
    write_json_atomic(run.delta_link("users"), {"link": "u"})
    for frame in ("users", "groups", "members"):
        run.snapshot(frame).write_bytes(b"")
    write_json_atomic(run.plan, ChangeSet(changes, {}).to_json() | {"status": "clear",
                                                                    "synced_in_domain": synced_in_domain})

    def answer(make_writer, planned, connections=1):
        return ApplySummary([ApplyResult(c.op, c.kind, c.anchor, c.dn, FAILED if c.anchor in failing else APPLIED,
                                         result_code=19 if c.anchor in failing else None, message="refused",
                                         writes=0 if c.anchor in failing else 1) for c in planned])

    monkeypatch.setattr(apply_stage, "apply_changes", answer)
    ctx = StageContext(settings, run, {}, endpoint_factory=lambda s: DomainEndpoint("dc", 636, "cn=x", "pw", C))
    return ctx, run


def modifies(*numbers):
    return [Change(Op.MODIFY, "user", anchor(n), f"CN=u{n},{C}", values={"title": ["x"]}) for n in numbers]


def test_two_failing_objects_of_a_hundred_synced_do_not_stop_the_run_and_it_commits(tmp_path, monkeypatch):
    ctx, run = apply_run(tmp_path, monkeypatch, {"user": 90, "group": 10}, modifies(1, 2, 3), {anchor(1), anchor(2)})
    summary = apply_stage.run(ctx)  # 2 of 3 changes failed, 2 of 100 objects: under 5%
    assert len(summary["failed"]) == 2 and "stopped" not in read_json(run.apply_results)
    state = StateStore(ctx.settings.state_dir)
    assert commit_run(state, run)["committed"] is True and state.delta_links()["users"]["link"] == "u"


def test_failing_objects_above_the_share_of_synced_objects_stop_the_run_and_commit_refuses_it(tmp_path, monkeypatch):
    ctx, run = apply_run(tmp_path, monkeypatch, {"user": 19, "group": 0}, modifies(1, 2, 3) + [
        Change(Op.CREATE, "user", anchor(4), f"CN=u4,{C}")], {anchor(1), anchor(2)})
    with pytest.raises(apply_stage.ApplyFailed, match=r"2 of the 20 synced objects failed"):
        apply_stage.run(ctx)  # 19 found + 1 create: 2/20 > 5%
    results = read_json(run.apply_results)
    assert "2 of the 20 synced objects failed" in results["stopped"] and results["failed"][0]["anchor"] == anchor(1)
    with pytest.raises(ApplyIncomplete, match="apply stopped the run"):
        commit_run(StateStore(ctx.settings.state_dir), run)


def test_one_object_failing_in_several_changes_counts_once(tmp_path, monkeypatch):
    member_add = Change(Op.ADD_MEMBERS, "group", anchor(1), f"CN=g1,{C}", members=[f"CN=u2,{C}"])
    ctx, run = apply_run(tmp_path, monkeypatch, {"group": 20}, modifies(1) + [member_add], {anchor(1)})
    assert len(apply_stage.run(ctx)["failed"]) == 2  # 1 of 20 objects: 5%, not above
    assert "stopped" not in json.loads(run.apply_results.read_text())


def test_in_a_domain_below_the_share_floor_a_failing_object_never_stops_the_run(tmp_path, monkeypatch):
    # 1 of 19 synced objects is over 5%, but 19 is under delete_share_min_objects (20): failing.py tracks it.
    ctx, run = apply_run(tmp_path, monkeypatch, {"user": 18, "group": 0}, modifies(1, 2, 3) + [
        Change(Op.CREATE, "user", anchor(4), f"CN=u4,{C}")], {anchor(1)})
    assert ctx.settings.delete_share_min_objects == 20
    assert [f["anchor"] for f in apply_stage.run(ctx)["failed"]] == [anchor(1)]
    assert "stopped" not in read_json(run.apply_results)
    assert commit_run(StateStore(ctx.settings.state_dir), run)["committed"] is True
