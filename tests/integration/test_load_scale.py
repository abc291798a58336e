"""Heavy loads on a Samba DC of their own: parallel connections, a 5,000-member group, a DC killed mid-apply.

These tests write thousands of objects and kill the DC, so they get a freshly provisioned DC for the
module instead of the session's: its objects are thrown away with it (deleting them from the shared
DC would take longer than writing them and leave tombstones that slow every later test).
"""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

import domain_sync.apply.stage as apply_stage
from domain_sync.apply.writer import ApplyAborted, DomainWriter
from domain_sync.domain import decode_anchor
from domain_sync.pipeline import run_stage
from domain_sync.runs import RunFolder
from tests.fixtures.local_domain import LocalDomainError, make_local_domain, pick_test_address
from tests.fixtures.sync_env import STAGES, new_sync_env, tenant_group, tenant_user

pytestmark = pytest.mark.integration

ANCHOR = "mS-DS-ConsistencyGuid"


@pytest.fixture(scope="module")
def own_domain(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("Samba's AD DC runs as root")
    session_dir = tmp_path_factory.mktemp("local-domain-load")  # found by stop_orphaned_test_domains
    (session_dir / "owner.pid").write_text(f"{os.getpid()}\n")
    try:
        domain = make_local_domain(session_dir / "domain", pick_test_address())
    except LocalDomainError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield domain
    domain.stop()
    shutil.rmtree(session_dir / "domain", ignore_errors=True)


@pytest.fixture
def env(own_domain, tmp_path, monkeypatch):
    env = new_sync_env(own_domain, tmp_path, monkeypatch)
    env.set(initial_password="none")  # no password derivation: thousands of users in seconds
    # The module's tests share a DC and a tenant id: a marker of each test's own keeps the thousands of objects
    # an earlier test left in its container from being this test's (owned objects outside its search base).
    env.set(owner_marker=f"domain-sync:load-test:{env.container}")
    yield env
    if env.emulator is not None:
        env.emulator.stop()


@pytest.fixture
def counted_connections(monkeypatch):
    """Every connection apply opens, with ldap3's usage counters on."""
    opened = []
    real_connect = apply_stage.connect

    def connect(endpoint, timeout=30.0, collect_usage=False, run_id=None):
        conn = real_connect(endpoint, timeout, collect_usage=True, run_id=run_id)
        opened.append(conn)
        return conn

    monkeypatch.setattr(apply_stage, "connect", connect)
    return opened


def total(connections, counter: str) -> int:
    return sum(getattr(c.usage, counter) for c in connections)


def synced_state(env) -> tuple[list[str], dict[str, set[str]]]:
    """Anchors of every user and group in the container (with repeats), and each group's members by anchor."""
    entries = env.synced_entries([ANCHOR, "member"])
    conn = env.ldap()
    try:  # the anchor's bytes as the domain holds them (raw: ldap3 formats unknown binary values loosely)
        found = conn.extend.standard.paged_search(env.container_dn, "(|(objectClass=user)(objectClass=group))",
                                                  attributes=[ANCHOR], paged_size=500, generator=False)
        raw = {e["dn"].lower(): e["raw_attributes"].get(ANCHOR) for e in found if e.get("type") == "searchResEntry"}
    finally:
        conn.unbind()
    anchor_of = {dn.lower(): decode_anchor(ANCHOR, raw.get(dn.lower()) or None) for dn in entries}
    members = {anchor_of[dn.lower()]: {anchor_of.get(m.lower(), m) for m in e.get("member", [])}
               for dn, e in entries.items() if e.get("member")}
    return list(anchor_of.values()), members


def test_a_member_joining_and_one_leaving_a_5000_member_group_are_two_small_modifies(env, counted_connections):
    env.set(apply_connections=4)
    users = [tenant_user(f"m{n:05d}", f"Member {n:05d}") for n in range(5001)]
    big = tenant_group("Everyone", users[:5000])
    emu = env.start_tenant({"users": users, "groups": [big]})

    first_run = env.run(run_id="load-1")
    assert first_run["apply"]["statuses"] == {"applied": first_run["apply"]["planned"]}
    assert first_run["apply"]["writes"]["user.create"] == 5001
    assert first_run["apply"]["writes"]["group.add_members"] == 5  # batches of 1,000 values
    # Parallel apply: four connections, each of which wrote a share of the users.
    assert len(counted_connections) == 4
    assert all(c.usage.add_operations > 100 for c in counted_connections)

    emu.admin.add_member(big["id"], users[5000]["id"])
    emu.admin.remove_member(big["id"], users[0]["id"])
    counted_connections.clear()
    second = env.run(run_id="load-2")

    plan = json.loads(RunFolder(env.settings.runs_dir, "load-2").plan.read_text())
    membership = [c for c in plan["changes"] if c["op"] in ("add_members", "remove_members")]
    assert [(c["op"], len(c["members"])) for c in membership] == [("add_members", 1), ("remove_members", 1)]
    # Members that exist in the domain are named by their objectGUID (a DN may be taken by another object
    # between plan and apply); the final membership below shows they were the right ones.
    assert all(c["members"][0].startswith("<GUID=") for c in membership), membership
    assert second["plan"]["changes"] == 2
    assert total(counted_connections, "modify_operations") == 2
    assert total(counted_connections, "add_operations") == total(counted_connections, "delete_operations") == 0
    assert second["apply"]["writes"] == {"group.add_members": 1, "group.remove_members": 1}

    _, members = synced_state(env)
    assert members[big["id"]] == {u["id"] for u in users[1:]}


def kill_mid_apply(env, monkeypatch, run_id: str, restart_at_once: bool) -> dict:
    """Run apply of `run_id` in a thread and kill the DC once 100 changes are written (the other workers'
    writes in flight); start it again at once or after apply has ended. Returns apply's result or error."""
    written, some_written, lock = [0], threading.Event(), threading.Lock()
    real_apply = DomainWriter.apply

    def counting_apply(self, change):
        result = real_apply(self, change)
        with lock:
            written[0] += 1
            if written[0] == 100:
                some_written.set()
        return result

    monkeypatch.setattr(DomainWriter, "apply", counting_apply)
    outcome: dict = {}

    def apply():
        try:
            outcome["result"] = run_stage("apply", run_id, {})
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=apply)
    worker.start()
    try:
        assert some_written.wait(120), "apply wrote nothing"
        env.domain.kill()
        if restart_at_once:
            env.domain.start()
        worker.join(90)
        assert not worker.is_alive(), "apply hangs"
    finally:
        env.domain.start()
    return outcome


def assert_exactly_the_tenant(env, users, groups) -> None:
    anchors, members = synced_state(env)
    assert sorted(anchors) == sorted(o["id"] for o in users + groups), "an object is missing or doubled"
    assert members == {g["id"]: {m["id"] for m in g["members"]} for g in groups}


def crash_tenant(env, prefix: str, users: int):
    users = [tenant_user(f"{prefix}{n:03d}", f"{prefix.upper()} {n:03d}") for n in range(users)]
    groups = [tenant_group(f"Team {prefix} {g}", users[g::3]) for g in range(3)]
    env.start_tenant({"users": users, "groups": groups})
    return users, groups


def test_a_dc_killed_mid_apply_fails_the_task_and_the_rerun_ends_exactly_in_the_planned_state(env, monkeypatch):
    env.set(apply_connections=4, ldap_retry_budget_seconds=3)
    users, groups = crash_tenant(env, "k", 300)
    env.run(STAGES[:STAGES.index("apply")], run_id="crash-1")

    outcome = kill_mid_apply(env, monkeypatch, "crash-1", restart_at_once=False)
    assert isinstance(outcome.get("error"), ApplyAborted), outcome
    partial = json.loads(RunFolder(env.settings.runs_dir, "crash-1").apply_results.read_text())
    assert "aborted" in partial and 100 <= sum(partial["writes"].values()) < partial["planned"]

    rerun = env.run(run_id="crash-2")
    assert rerun["apply"]["statuses"].get("failed", 0) == 0
    assert_exactly_the_tenant(env, users, groups)
    assert env.run(run_id="crash-3")["plan"]["changes"] == 0


def test_a_dc_back_within_the_retry_budget_lets_the_same_apply_finish(env, monkeypatch, counted_connections):
    env.set(apply_connections=4, ldap_retry_budget_seconds=60)
    users, groups = crash_tenant(env, "f", 200)
    env.run(STAGES[:STAGES.index("apply")], run_id="flap-1")

    outcome = kill_mid_apply(env, monkeypatch, "flap-1", restart_at_once=True)
    assert "result" in outcome, outcome
    assert len(counted_connections) > 4, "the workers went on over fresh connections"
    assert set(outcome["result"]["statuses"]) <= {"applied", "already_in_place"}
    assert_exactly_the_tenant(env, users, groups)
    assert env.run(run_id="flap-2")["plan"]["changes"] == 0
