"""A delta round that brought nothing: transform carries the committed snapshot, records and notes instead of
making them again, and what it leaves is what making them gives (frames, notes, summary)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from domain_sync.runs import RunFolder
from domain_sync.state import StateStore
from domain_sync.storage import read_json, read_parquet
from domain_sync.transform import incremental as transform_incremental
from tests.unit.test_validate_suites import transform_run, user, validate_run, write_round

GROUPS = [{"id": "10000000-0000-4000-8000-000000000001", "displayName": "Team", "securityEnabled": True},
          {"id": "10000000-0000-4000-8000-000000000002", "displayName": "Others", "securityEnabled": True}]


def committed_round(settings, run_id: str, full: bool, users=(), groups=(), members=()) -> tuple[RunFolder, dict]:
    """Transform a round and commit it as the whole sync would (the plan's files are not needed here)."""
    run = write_round(settings, run_id, list(users), list(groups), list(members), full=full)
    summary = transform_run(settings, run)
    validate_run(settings, run)
    state = StateStore(settings.state_dir)
    state.commit(run.snapshot_dir, {r: f"test://{r}" for r in ("users", "groups")}, extra_files=run.carried_files())
    return run, summary


def empty_round(settings, run_id: str) -> RunFolder:
    run = write_round(settings, run_id, [user(0)], GROUPS, [], full=False)
    for frame in ("users", "groups"):  # nothing staged: the columns of a round, no row
        read_parquet(run.staged(frame)).iloc[:0].to_parquet(run.staged(frame), index=False)
    return run


def frames(run: RunFolder) -> dict[str, pd.DataFrame]:
    out = {f"snapshot {f}": read_parquet(run.snapshot(f)) for f in ("users", "groups", "members")}
    out |= {f"records {f}": read_parquet(run.records(f)) for f in ("users", "groups", "members")}
    return out


@pytest.mark.parametrize("scope", [None, "Team"])
def test_an_idle_round_carries_what_making_it_gives(settings, monkeypatch, scope):
    settings = dataclasses.replace(settings, scope_groups=scope, max_quarantine_share=0.5)
    users = [user(n) for n in range(12)]
    users[4]["userPrincipalName"] = "not an address"  # its record is made all the same (validate quarantines)
    members = [(GROUPS[0]["id"], users[n]["id"]) for n in range(5)] + [(GROUPS[1]["id"], GROUPS[0]["id"]),
                                                                        (GROUPS[1]["id"], "not-in-tenant")]
    committed_round(settings, "r1", True, users, GROUPS, members)
    # A delta round with changes: a user's department; Team gains users[7] (in scope from now, with a scope).
    r2, moved = committed_round(settings, "r2", False, [dict(users[2], department="Sales")], GROUPS[:1],
                                [(GROUPS[0]["id"], users[7]["id"])])
    notes = read_json(r2.records_notes)
    assert notes["groups_changed_by_members"] == {GROUPS[0]["id"]: [users[7]["id"]]}
    assert notes["scope_changed"] == ([users[7]["id"]] if scope else [])
    assert moved["scope"]["users_entering"] == (1 if scope else 0)

    idle = empty_round(settings, "r3-idle")
    carried = transform_run(settings, idle)
    assert carried["records"] == {"made": "incremental", "objects_remade": 0, "idle_round": True}

    monkeypatch.setattr("domain_sync.transform.stage.carry_idle_round", lambda *a: None)
    made_run = empty_round(settings, "r3-made")
    made = transform_run(settings, made_run)
    assert made["records"] == {"made": "incremental", "objects_remade": 0}
    assert {k: v for k, v in carried.items() if k != "records"} == {k: v for k, v in made.items() if k != "records"}
    assert carried["scope"]["users_in_scope"] == (6 if scope else 12) and carried["scope"]["users_entering"] == 0
    for name, frame in frames(made_run).items():
        pd.testing.assert_frame_equal(frames(idle)[name], frame, obj=name)
    assert read_json(idle.records_notes) == read_json(made_run.records_notes)
    assert read_json(idle.records_meta) == {**read_json(made_run.records_meta), "idle_round": True}
    assert read_json(idle.value_fixes) == read_json(made_run.value_fixes)

    # Validate carries the committed quarantine for the idle round: what checking the same rows gives.
    checked, carried_check = validate_run(settings, made_run), validate_run(settings, idle)
    assert carried_check["rules_ran_on"] == {"mode": "idle round", "carried_from_commit": 1}
    assert read_json(idle.quarantine) == read_json(made_run.quarantine)
    assert [q["anchor"] for q in read_json(idle.quarantine)] == [users[4]["id"]]
    own = {"rules_ran_on", "quarantine_file", "report_file"}
    assert {k: v for k, v in carried_check.items() if k not in own} == {k: v for k, v in checked.items() if k not in own}


def test_a_round_is_made_when_it_brought_something_or_the_commit_cannot_be_carried(settings, monkeypatch):
    users = [user(n) for n in range(3)]
    committed_round(settings, "r1", True, users, GROUPS, [(GROUPS[0]["id"], users[0]["id"])])
    calls = []
    carry = transform_incremental.carry_idle_round
    monkeypatch.setattr("domain_sync.transform.stage.carry_idle_round", lambda *a: calls.append(a) or carry(*a))

    # A member removed in the tenant: the round is not idle.
    run = empty_round(settings, "r2")
    removed = pd.DataFrame([(GROUPS[0]["id"], users[0]["id"], "user", True)],
                           columns=["group_id", "member_id", "member_type", "removed"])
    removed.to_parquet(run.staged("members"), index=False)
    assert "idle_round" not in transform_run(settings, run)["records"] and not calls
    assert read_parquet(run.records("members")).empty

    # A commit without records notes (made by an older release) is not carried: the round is made.
    state = StateStore(settings.state_dir)
    state.commit(run.snapshot_dir, {r: f"test://{r}" for r in ("users", "groups")},
                 extra_files=tuple(f for f in run.carried_files() if f != run.records_notes))
    summary = transform_run(settings, empty_round(settings, "r3"))
    assert len(calls) == 1 and "idle_round" not in summary["records"]
    assert summary["records"]["made"] == "incremental"

    # Under another mapping the committed records are not this round's: made whole.
    state.commit(run.snapshot_dir, {r: f"test://{r}" for r in ("users", "groups")}, extra_files=run.carried_files())
    mapping = settings.mapping_file
    other = pd.io.common.stringify_path(settings.data_dir) + "/mapping.yaml"
    with open(mapping, encoding="utf-8") as source, open(other, "w", encoding="utf-8") as target:
        target.write(source.read() + "\n# changed\n")
    summary = transform_run(dataclasses.replace(settings, mapping_file=other), empty_round(settings, "r4"))
    assert "idle_round" not in summary["records"] and summary["records"]["made"] == "full"
