"""The apply spread over batches, as the DAGs' mapped tasks run it, against the real Samba DC: a hostile tenant of
a few hundred objects and a seeded round of changes (renames into collisions, name swaps, deletes freeing names,
UPN moves, membership moves) go through batches of 20, the batches of a phase in parallel; the domain ends in
exactly the planned state, the same as the single apply task leaves it; a retried batch writes nothing twice."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from domain_sync.apply.batches import phase_batches
from domain_sync.apply.phases import BATCH_PARAM, MERGE_PARAM, PHASE_NAMES
from domain_sync.pipeline import run_stage
from domain_sync.runs import RunFolder
from domain_sync.state import release_run_lock
from domain_sync.storage import read_json, remove
from emulator.hostile import hostile_tenant, random_changes
from tests.fixtures.convergence import (
    DNS_NAME,
    check_convergence,
    create_local_objects,
    idle_sync,
    owned_anchors,
    snapshot_objects,
    tenant_state,
)
from tests.fixtures.sync_env import STAGES, end_sync_env, first, new_sync_env

pytestmark = pytest.mark.integration

USERS, GROUPS, CHANGES, SEED = 240, 30, 60, 2026
BEFORE_APPLY = STAGES[:STAGES.index("apply")]
AFTER_APPLY = STAGES[STAGES.index("apply") + 1:]


def batched_sync(env, run_id: str, workers: int = 3) -> dict[str, Any]:
    """Every stage as the DAG runs it, the apply as apply_batches, then each phase's batches on `workers`
    threads at once (the mapped tasks of one phase), then apply merging their results."""
    results: dict[str, Any] = {}
    try:
        for stage in BEFORE_APPLY + ["apply_batches"]:
            results[stage] = run_stage(stage, run_id, {})
        run = RunFolder(env.settings.runs_dir, run_id)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for phase in PHASE_NAMES:  # a phase starts when every batch of the one before has finished
                batches = phase_batches(run, phase)
                for batch, result in zip(batches, pool.map(
                        lambda b: run_stage("apply_batch", run_id, {BATCH_PARAM: b}), batches), strict=True):
                    results[batch] = result
        results["apply"] = run_stage("apply", run_id, {MERGE_PARAM: True})
        for stage in AFTER_APPLY:
            results[stage] = run_stage(stage, run_id, {})
    finally:
        release_run_lock(env.settings, run_id)
    return results


def single_sync(env, run_id: str) -> dict[str, Any]:
    return env.run(run_id=run_id)


# Values that differ between two domains holding the same objects: identities, times, counters.
VOLATILE = {"objectguid", "objectsid", "usnchanged", "usncreated", "whenchanged", "whencreated", "pwdlastset",
            "dscorepropagationdata", "badpasswordtime", "lastlogon", "lastlogoff", "lastlogontimestamp",
            "logoncount", "badpwdcount", "msds-keyversionnumber", "replpropertymetadata", "objectcategory",
            "instancetype", "distinguishedname", "primarygroupid", "accountexpires", "codepage", "countrycode"}


def domain_state(env) -> dict[str, dict[str, Any]]:
    """The users and groups in the test's container by sAMAccountName, DNs in values written relative to the
    container, without the values two domains holding the same objects never share."""
    container = re.compile(re.escape(env.container_dn), re.IGNORECASE)

    def plain(value: Any) -> Any:
        if isinstance(value, list):
            return sorted(plain(v) for v in value)
        if isinstance(value, bytes):
            return value.hex()
        return container.sub("<container>", str(value))

    return {str(first(e["samaccountname"])): {k: plain(v) for k, v in e.items() if k not in VOLATILE}
            for dn, e in env.synced_entries().items()}


def run_scenario(env, sync) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """The hostile tenant with local objects that collide, a first sync, the seeded changes, a second sync;
    checks each ends converged (nothing left to plan, the domain-only check finds nothing)."""
    doc = hostile_tenant(USERS, GROUPS, SEED, domain=DNS_NAME)
    marker = f"domain-sync:{doc['tenant']['id']}"
    local = create_local_objects(env, doc)
    before = snapshot_objects(env.endpoint, [o.dn for o in local])
    emu = env.start_tenant(doc)
    env.set(apply_batch_size=20)
    first_run = sync(env, "sync-1")
    _, problems = idle_sync(env, "idle-1")
    assert not problems, "\n".join(problems)
    synced = owned_anchors(env, marker)
    random_changes(emu.admin, CHANGES, SEED)
    second_run = sync(env, "sync-2")
    report = check_convergence(tenant_state(emu.admin), env.settings, env.endpoint, local_before=before,
                               runs=[RunFolder(env.settings.runs_dir, "sync-2")], synced_before=synced,
                               owner_marker=marker)
    assert report.counts["owned"] > USERS // 2 and not report.problems, report.text()
    _, problems = idle_sync(env, "idle-2")  # exactly the planned state: a new plan has nothing to do
    assert not problems, "\n".join(problems)
    return first_run, second_run, domain_state(env)


def counts(result: dict[str, Any]) -> dict[str, Any]:
    apply = result["apply"]
    return {"planned": apply["planned"], "writes": apply["writes"], "statuses": apply["statuses"],
            "failed": [(f["op"], f["anchor"], f["result_code"]) for f in apply["failed"]]}


def test_batches_of_20_end_in_the_planned_state_and_equal_the_single_apply(local_domain, tmp_path, monkeypatch):
    (tmp_path / "single").mkdir()
    (tmp_path / "batched").mkdir()
    single_env = new_sync_env(local_domain, tmp_path / "single", monkeypatch)
    try:
        single = run_scenario(single_env, single_sync)
    finally:
        end_sync_env(single_env)  # frees the domain-wide names for the batched run

    batched_env = new_sync_env(local_domain, tmp_path / "batched", monkeypatch)
    try:
        batched = run_scenario(batched_env, batched_sync)
        first_run, second_run, state = batched
        # A change set of a few hundred objects went through many batches, several in some phases.
        index = read_json(RunFolder(batched_env.settings.runs_dir, "sync-1").apply_batches)
        assert first_run["apply"]["planned"] > 300 and first_run["apply"]["batches"] > 15
        assert max(len(ids) for ids in index["phases"].values()) > 5
        phases_two = read_json(RunFolder(batched_env.settings.runs_dir, "sync-2").apply_batches)["phases"]
        assert len([p for p, ids in phases_two.items() if ids]) >= 4, phases_two

        assert counts(first_run) == counts(single[0])
        assert counts(second_run) == counts(single[1])
        assert len(state) > USERS // 2 and any(e.get("member") for e in state.values())
        assert state == single[2]
    finally:
        end_sync_env(batched_env)


def test_a_retried_batch_writes_nothing_twice(sync_env):
    """A batch run again after it finished (its task cleared, a worker lost after the results were written)
    finds its results and writes nothing; one whose results were lost re-reads the domain and finds every
    change in place."""
    doc = hostile_tenant(60, 12, SEED, domain=DNS_NAME)
    sync_env.start_tenant(doc)
    sync_env.set(apply_batch_size=20)
    run_id = "sync-1"
    results: dict[str, Any] = {}
    for stage in BEFORE_APPLY + ["apply_batches"]:
        results[stage] = run_stage(stage, run_id, {})
    run = RunFolder(sync_env.settings.runs_dir, run_id)
    for phase in PHASE_NAMES:
        for batch in phase_batches(run, phase):
            results[batch] = run_stage("apply_batch", run_id, {BATCH_PARAM: batch})
    creates, adds = phase_batches(run, "creates"), phase_batches(run, "member_adds")
    assert len(creates) >= 3 and adds and results[creates[0]]["total_writes"] > 0

    usn = sync_env.highest_usn()
    again = run_stage("apply_batch", run_id, {BATCH_PARAM: creates[0]})
    assert again["already_applied"] and again["total_writes"] == 0
    remove(run.apply_batch_results(adds[0]))  # lost: the batch writes again, finding everything in place
    lost = run_stage("apply_batch", run_id, {BATCH_PARAM: adds[0]})
    assert lost["total_writes"] == 0 and set(lost["statuses"]) == {"already_in_place"}
    assert sync_env.highest_usn() == usn, "a retried batch wrote to the domain"

    merged = run_stage("apply", run_id, {MERGE_PARAM: True})
    assert merged["failed"] == [] and merged["batches"] == sum(len(phase_batches(run, p)) for p in PHASE_NAMES)
    for stage in AFTER_APPLY:
        run_stage(stage, run_id, {})
    _, problems = idle_sync(sync_env, "idle-1")
    assert not problems, "\n".join(problems)
