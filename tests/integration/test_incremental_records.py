"""A delta round's records and quarantine, made for the round's objects only (transform/incremental.py,
validate/stage.objects_to_check), are the ones a full pass over every object makes: random hostile tenants
through rounds of random tenant changes, read by the provider's hook from the emulator, each round's
transform and validate run incrementally and then again in full on the same run, compared, and committed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from domain_sync.pipeline import run_stage
from domain_sync.state import StateStore, commit_run
from domain_sync.storage import read_json, read_parquet, write_json_atomic
from emulator.hostile import hostile_tenant, random_changes
from tests.fixtures.sync_env import run_folder

pytestmark = pytest.mark.integration

STAGES = ["extract_users", "extract_groups", "transform", "validate"]


def made(env, run_id: str) -> dict:
    """The run's records, quarantine and how transform made the records."""
    run = run_folder(env, run_id)
    out = {frame: read_parquet(run.records(frame)) for frame in ("users", "groups", "members")}
    out["quarantine"] = sorted(tuple(sorted((k, str(v)) for k, v in q.items())) for q in read_json(run.quarantine))
    out["mode"] = read_json(run.records_meta)["mode"]
    return out


def assert_same(incremental: dict, full: dict, where: str) -> None:
    for frame in ("users", "groups", "members"):
        pd.testing.assert_frame_equal(incremental[frame], full[frame], obj=f"{where}: {frame} records")
    assert incremental["quarantine"] == full["quarantine"], where


def round_(env, run_id: str) -> tuple[dict, dict]:
    """Extract, transform and validate a round as the plan would see it; then transform and validate it again
    with every record made and checked (DOMAIN_SYNC_PLAN_MODE=full); commit it as a successful apply would."""
    for stage in STAGES:
        run_stage(stage, run_id, {})
    first = made(env, run_id)
    env.set(plan_mode="full")
    for stage in ("transform", "validate"):
        run_stage(stage, run_id, {})
    again = made(env, run_id)
    env.monkeypatch.delenv("DOMAIN_SYNC_PLAN_MODE")
    run = run_folder(env, run_id)
    for stage in ("transform", "validate"):  # the run's files as the first pass left them, for the commit
        run_stage(stage, run_id, {})
    write_json_atomic(run.apply_results, {"note": "no domain writes in this test"})
    commit_run(StateStore(env.settings.state_dir), run)
    return first, again


def with_faults(tenant: dict) -> tuple[dict, list[dict]]:
    """The tenant with objects validation quarantines (malformed UPNs, a non-GUID id), two users whose ids share
    their first 8 hex digits (one of them takes its whole id as its cn's suffix), and users lined up for the
    faults of round 1."""
    users = [u for u in tenant["users"] if not u.get("deletedDateTime")]
    ids = {}  # old id -> new id, replaced wherever the document names it (members, managers)
    for a, b in ((3, 4), (5, 6)):  # the same 8 first hex digits: equal suffixed cns when the display names are equal
        ids[users[b]["id"]] = users[a]["id"][:8] + users[b]["id"][8:]
    ids[users[7]["id"]] = "not-a-guid-7"
    text = json.dumps(tenant)
    for old, new in ids.items():
        text = text.replace(old, new)
    tenant = json.loads(text)
    picked = [u for u in tenant["users"] if not u.get("deletedDateTime")][:12]
    picked[0]["userPrincipalName"] = "two@@" + picked[0]["userPrincipalName"].split("@")[-1]
    picked[2]["userPrincipalName"] = "sp ace." + picked[2]["userPrincipalName"]
    picked[4]["displayName"] = picked[3]["displayName"]
    return tenant, picked


def scope_group(tenant: dict, picked: list[dict]) -> str:
    """A group holding every user but picked[10] and picked[11] (the scope of the scoped examples); its id."""
    outside = {picked[10]["id"], picked[11]["id"]}
    group = {"id": "5c09e000-0000-4000-8000-000000000001", "displayName": "Scope", "securityEnabled": True,
             "mailEnabled": False, "members": [{"id": u["id"], "@odata.type": "#microsoft.graph.user"}
                                               for u in tenant["users"]
                                               if u["id"] not in outside and not u.get("deletedDateTime")]}
    tenant["groups"].append(group)
    return group["id"]


def fault_moves(admin, picked: list[dict], scope: str | None) -> None:
    """Round 1: a quarantined UPN mended (another stays as it was), one of a cn pair renamed (its unchanged twin
    keeps its cn), and a changed user taking the display name of an unchanged one whose id shares its first 8 hex
    digits (a suffixed cn for both, its whole id for one); with a scope, a user leaves it and another enters it
    by membership alone (not in the round's users)."""
    if scope:
        admin.remove_member(scope, picked[9]["id"])
        admin.add_member(scope, picked[10]["id"])
    admin.update_user(picked[0]["id"], {"userPrincipalName": "mended." + picked[8]["userPrincipalName"]})
    admin.update_user(picked[3]["id"], {"displayName": picked[3]["displayName"] + " Split"})
    admin.update_user(picked[5]["id"], {"displayName": picked[6]["displayName"]})


# Each example is a few rounds through the emulator (tens of seconds): a few, not shrunk, one of them scoped.
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.generate], database=None)
@given(seed=st.integers(0, 10**6), changes=st.integers(3, 25), scoped=st.booleans())
@example(seed=2026, changes=8, scoped=True)
def test_a_delta_rounds_records_and_quarantine_are_the_full_ones(local_domain, tmp_path, monkeypatch, seed, changes,
                                                                   scoped):
    from tests.fixtures.sync_env import end_sync_env, new_sync_env

    env = new_sync_env(local_domain, Path(tempfile.mkdtemp(prefix=f"seed-{seed}-", dir=tmp_path)), monkeypatch)
    try:
        tenant, picked = with_faults(hostile_tenant(users=40, groups=12, seed=seed))
        scope = {scope_group(tenant, picked)} if scoped else set()
        env.set(max_quarantine_share=0.5, scope_groups=",".join(scope))
        emu = env.start_tenant(tenant)
        first, again = round_(env, "round-0")
        assert first["mode"] == again["mode"] == "full"
        assert len({q[0] for q in first["quarantine"]}) >= 3, first["quarantine"]
        for n in range(1, 4):
            if n == 1:
                fault_moves(emu.admin, picked, next(iter(scope), None))
            done = random_changes(emu.admin, changes, seed + n)
            if scope & {c.id for c in done if c.op.endswith("delete") and c.outcome == "applied"}:
                break  # a scope group deleted stops the run (ScopeError): nothing left to compare
            first, again = round_(env, f"round-{n}")
            assert (first["mode"], again["mode"]) == ("incremental", "full"), n
            assert_same(first, again, f"seed {seed}, round {n}")
    finally:
        end_sync_env(env)


def test_a_round_without_changes_keeps_every_record_and_starts_no_validation_suite(sync_env):
    """The no-change round is idle: no record is made again (the committed ones are carried), and validation
    carries the committed quarantine: its suites see no row (Great Expectations is not even started)."""
    from tests.fixtures.sync_env import tenant_group, tenant_user

    people = [tenant_user(f"nc{i}", f"No Change {i}") for i in range(4)]
    sync_env.start_tenant({"users": people, "groups": [tenant_group("Steady", people)]})
    round_(sync_env, "round-0")
    for stage in STAGES:
        run_stage(stage, "round-1", {})
    run = run_folder(sync_env, "round-1")
    meta = read_json(run.records_meta)
    assert meta["remade_ids"] == [] and meta["idle_round"] is True
    report = read_json(run.validation_report)
    assert report["summary"]["rules_ran_on"] == {"mode": "idle round", "carried_from_commit": 0}
    assert all(suite["checked"] == 0 for name, suite in report["suites"].items() if not name.startswith("staged_"))
    assert report["summary"]["checked"] == {"user": 4, "group": 1}
