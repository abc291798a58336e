"""Extract through the provider's hook against the emulator when Graph misbehaves: throttling, server
errors, slow and dropped responses, refused credentials; and the hook's life cycle in one process."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pandas as pd
import pytest

from domain_sync.config import Settings
from domain_sync.extract.graph_reader import TenantUnavailable, read_delta
from domain_sync.extract.stage import _make_hook
from domain_sync.pipeline import run_stage
from domain_sync.runs import RunFolder
from tests.fixtures.sync_env import staged, tenant_group, tenant_user

pytestmark = pytest.mark.integration

EXTRACT = ["extract_users", "extract_groups"]


def paged_tenant(users: int = 40) -> dict:
    people = [tenant_user(f"user{i:02d}", f"User {i:02d}") for i in range(users)]
    seven = tenant_group("Seven", people[:7])
    twelve = tenant_group("Twelve", people[5:17])
    nested = tenant_group("Nested", [seven, people[30], people[31]])
    return {"users": people, "groups": [seven, twelve, nested]}


def few_users(count: int) -> dict:
    return {"users": [tenant_user(f"user{i:02d}", f"User {i:02d}") for i in range(count)], "groups": []}


def memberships(tenant: dict) -> list[tuple[str, str]]:
    return [(g["id"], m["id"]) for g in tenant["groups"] for m in g["members"]]


def assert_staged_is_exactly(env, run_id: str, tenant: dict) -> None:
    users = staged(env, run_id, "users")
    assert sorted(users["id"]) == sorted(u["id"] for u in tenant["users"]), "users missing or staged twice"
    assert users["_removed"].isna().all()
    groups = staged(env, run_id, "groups")
    # A group whose members span pages repeats on the following pages (Graph does the same).
    assert set(groups["id"]) == {g["id"] for g in tenant["groups"]}
    members = staged(env, run_id, "members")
    pairs = Counter(zip(members["group_id"], members["member_id"], strict=True))
    assert pairs == Counter(memberships(tenant)), "memberships missing or staged twice"
    assert not members["removed"].any()


def test_throttling_server_errors_slow_and_dropped_responses_still_stage_exactly_the_tenant(sync_env):
    tenant = paged_tenant()
    emu = sync_env.start_tenant(tenant)
    emu.admin.settings(page_size=5, members_page_size=3)
    emu.admin.set_faults(
        # A burst longer than kiota's three retries: this reader waits Retry-After and tries again.
        {"kind": "throttle", "path": "/v1.0/users/delta", "count": 4, "retry_after": 1},
        {"kind": "delay", "path": "/v1.0/", "delay": 0.3, "rate": 0.2, "seed": 6},
        {"kind": "error", "path": "/v1.0/", "status": 500, "rate": 0.2, "seed": 3},
        {"kind": "error", "path": "/v1.0/", "status": 503, "rate": 0.1, "seed": 4, "retry_after": 1},
        {"kind": "drop", "path": "/v1.0/", "rate": 0.15, "seed": 5},
    )
    result = sync_env.run(stages=EXTRACT, run_id="storm")

    assert_staged_is_exactly(sync_env, "storm", tenant)
    seen = Counter()
    for path in ("/v1.0/users/delta", "/v1.0/groups/delta"):
        seen.update(emu.admin.stats()["requests"][path])
    assert seen["429"] >= 4 and seen["500"] >= 1 and seen["dropped"] >= 1, seen
    assert result["extract_users"]["retries"] >= 2 and result["extract_groups"]["retries"] >= 1
    assert result["extract_users"]["pages"] == 8
    # The folded snapshot holds the tenant, nothing more.
    sync_env.run(stages=["transform"], run_id="storm")
    storm = RunFolder(sync_env.settings.runs_dir, "storm")
    snapshot_members = pd.read_parquet(storm.snapshot("members"))
    assert sorted(zip(snapshot_members["group_id"], snapshot_members["member_id"], strict=True)) == sorted(
        memberships(tenant))
    assert len(pd.read_parquet(storm.snapshot("users"))) == len(tenant["users"])


def test_reader_waits_the_retry_after_graph_gave_once_the_hooks_own_retries_are_spent(sync_env):
    tenant = few_users(3)
    emu = sync_env.start_tenant(tenant)
    emu.admin.set_faults({"kind": "throttle", "path": "/v1.0/users/delta", "count": 4, "retry_after": 1})
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    async def go():
        hook = _make_hook(Settings.from_env())
        try:
            return await read_delta(hook, "users", ["id", "displayName"], None, pages.append, "msgraph_tenant",
                                    60, sleep=record)
        finally:
            await hook.close()

    pages: list[list[dict]] = []
    round_ = asyncio.run(go())
    # kiota slept Retry-After three times (429 x3), then the hook raised with the body only; the fourth
    # 429's Retry-After (1 s) decides the wait, not the exponential backoff (at most 0.5 s at first).
    assert slept == [1.0]
    assert round_.retries == 1 and sorted(u["id"] for u in pages[0]) == sorted(u["id"] for u in tenant["users"])


def test_persistent_server_errors_give_up_within_the_retry_budget_naming_the_connection(sync_env):
    sync_env.start_tenant(few_users(3)).admin.set_faults({"kind": "error", "status": 500})
    sync_env.set(graph_retry_budget_seconds=2)
    started = time.monotonic()
    with pytest.raises(TenantUnavailable, match="msgraph_tenant") as caught:
        run_stage("extract_users", "budget", {})
    assert time.monotonic() - started < 8
    assert "2s)" in str(caught.value) and "500" in str(caught.value)
    extract = RunFolder(sync_env.settings.runs_dir, "budget").path / "extract"
    assert sorted(p.name for p in extract.iterdir()) == [], "a failed round leaves no staged file"


def test_a_retry_after_beyond_the_budget_gives_up_at_once(sync_env):
    # kiota does not retry when Retry-After is 180 s or more; waiting 200 s would blow the 60 s budget.
    sync_env.start_tenant(few_users(3)).admin.set_faults({"kind": "throttle", "retry_after": 200})
    started = time.monotonic()
    with pytest.raises(TenantUnavailable, match="asked to wait 200s"):
        run_stage("extract_users", "long-wait", {})
    assert time.monotonic() - started < 5


def test_a_response_slower_than_the_timeout_is_retried_not_waited_for(sync_env):
    tenant = few_users(12)
    emu = sync_env.start_tenant(tenant)
    emu.admin.settings(page_size=5)
    emu.admin.set_faults({"kind": "delay", "path": "/v1.0/users/delta", "delay": 4, "count": 2})
    sync_env.set(graph_timeout_seconds=1)
    started = time.monotonic()
    result = sync_env.run(stages=EXTRACT, run_id="slow")
    assert time.monotonic() - started < 8, "the reader waited for the slow answers"
    assert result["extract_users"]["retries"] == 2
    assert_staged_is_exactly(sync_env, "slow", tenant)


def test_two_extracts_in_one_process_each_close_their_hook(sync_env):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    tenant = few_users(6)
    emu = sync_env.start_tenant(tenant)
    sync_env.run(stages=EXTRACT, run_id="first")
    assert "msgraph_tenant" not in KiotaRequestAdapterHook.cached_request_adapters
    late = tenant_user("late", "Late Comer")
    emu.admin.create_user(late)
    # A new event loop: an adapter cached by the first run would fail with "Event loop is closed".
    second = sync_env.run(stages=EXTRACT, run_id="second", full_resync=True)
    assert second["extract_users"]["objects"] == len(tenant["users"]) + 1
    assert "msgraph_tenant" not in KiotaRequestAdapterHook.cached_request_adapters


def _assert_refused_fast_without_secret(sync_env, secret: str, capfd, caplog) -> str:
    from domain_sync.errors import PermanentError

    started = time.monotonic()
    with pytest.raises(PermanentError) as caught:
        run_stage("extract_users", "refused", {})
    assert time.monotonic() - started < 5, "refused credentials were retried"
    message = str(caught.value)
    assert "msgraph_tenant" in message and "client" in message
    chain, exc = [], caught.value
    while exc is not None:
        chain.append(repr(exc))
        exc = exc.__cause__ or exc.__context__
    out, err = capfd.readouterr()
    for text in (message, *chain, out, err, caplog.text):
        assert secret not in text
    return message


def test_a_wrong_client_secret_fails_the_task_at_once_naming_the_connection_not_the_secret(
        sync_env, monkeypatch, capfd, caplog):
    emu = sync_env.start_tenant(few_users(3))
    wrong = "Wr0ng-Secret-" + "x7" * 12
    connection = json.loads(emu.connection_json())
    connection["password"] = wrong
    monkeypatch.setenv("AIRFLOW_CONN_MSGRAPH_TENANT", json.dumps(connection))
    caplog.set_level("DEBUG")
    message = _assert_refused_fast_without_secret(sync_env, wrong, capfd, caplog)
    assert "invalid_client" in message
    stats = emu.admin.stats()
    assert stats["token_requests"] == {"/{tenant}/oauth2/v2.0/token": {"401": 1}}
    assert stats["total_requests"] == 0


def test_the_token_endpoint_refusing_fails_the_task_at_once(sync_env, capfd, caplog):
    emu = sync_env.start_tenant(few_users(3))
    emu.admin.set_faults({"kind": "refuse_token"})
    caplog.set_level("DEBUG")
    _assert_refused_fast_without_secret(sync_env, emu.client_secret, capfd, caplog)
    assert emu.admin.stats()["token_requests"]["/{tenant}/oauth2/v2.0/token"] == {"401": 1}
