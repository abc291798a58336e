"""The emulator through the Airflow provider's real KiotaRequestAdapterHook (unchanged), as the pipeline uses it."""

from __future__ import annotations

import asyncio
import json

import pytest

from emulator.testing import start_emulator

from .conftest import DEMO_TENANT

# The hook hands the connection's "verify" (the CA file) to httpx as well, which warns about a str.
pytestmark = pytest.mark.filterwarnings("ignore:`verify=<str>` is deprecated:DeprecationWarning")

CONN_ID = "tenant_emulator"
SELECT = "id,displayName,jobTitle"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    running = start_emulator(DEMO_TENANT, tmp_path_factory.mktemp("hook-emulator"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def conn(emu, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", emu.connection_json())
    emu.admin.clear_faults()
    yield emu
    emu.admin.clear_faults()
    emu.admin.settings(page_size=100, members_page_size=1000, delta_link_max_age_seconds=7 * 24 * 3600)


async def _pages(url: str, query_parameters: dict | None = None, conn_id: str = CONN_ID) -> list[dict]:
    """One delta round the way the pipeline reads it: run, then follow next links after assert_allowed_host."""
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    hook = KiotaRequestAdapterHook(conn_id=conn_id, timeout=30)
    pages = []
    try:
        response = await hook.run(url=url, query_parameters=query_parameters)
        pages.append(response)
        while "@odata.nextLink" in response:
            next_link = response["@odata.nextLink"]
            await hook.assert_allowed_host(next_link)
            response = await hook.run(url=next_link)
            pages.append(response)
    finally:
        await hook.close()
    return pages


def delta_round(url: str, query_parameters: dict | None = None, conn_id: str = CONN_ID) -> tuple[list[dict], str]:
    pages = asyncio.run(_pages(url, query_parameters, conn_id))
    assert all("@odata.deltaLink" not in p for p in pages[:-1])
    return [item for p in pages for item in p["value"]], pages[-1]["@odata.deltaLink"]


def test_all_users_arrive_through_the_hook(conn):
    conn.admin.settings(page_size=7)
    pages = asyncio.run(_pages("users/delta", {"$select": "id,displayName"}))
    items = [item for p in pages for item in p["value"]]
    expected = {u["id"]: u["displayName"] for u in conn.admin.export()["users"]}
    assert len(pages) == -(-len(expected) // 7)
    assert {i["id"]: i["displayName"] for i in items} == expected
    assert len(items) == len(expected) == 60
    assert all(set(i) == {"id", "displayName"} for i in items)
    assert "@odata.deltaLink" in pages[-1]


def test_a_round_after_an_admin_change_returns_exactly_that_change(conn):
    _, delta_link = delta_round("users/delta", {"$select": SELECT})
    user = conn.admin.export()["users"][5]
    conn.admin.update_user(user["id"], {"jobTitle": "Chief Emulation Officer"})
    items, delta_link = delta_round(delta_link)
    assert items == [{"id": user["id"], "displayName": user["displayName"], "jobTitle": "Chief Emulation Officer"}]
    items, _ = delta_round(delta_link)
    assert items == []


def test_deletions_and_creations_arrive_in_the_next_round(conn):
    _, delta_link = delta_round("users/delta", {"$select": SELECT})
    users = conn.admin.export()["users"]
    conn.admin.delete_user(users[10]["id"])
    conn.admin.delete_user(users[11]["id"], permanent=True)
    created = conn.admin.create_user({"displayName": "Łucja Nowak", "jobTitle": "Intern"})
    items, _ = delta_round(delta_link)
    assert sorted(items, key=lambda i: i["id"]) == sorted(
        [
            {"id": users[10]["id"], "@removed": {"reason": "changed"}},
            {"id": users[11]["id"], "@removed": {"reason": "deleted"}},
            {"id": created["id"], "displayName": "Łucja Nowak", "jobTitle": "Intern"},
        ],
        key=lambda i: i["id"],
    )


def test_group_members_span_pages_and_merge(conn):
    conn.admin.settings(members_page_size=10)
    items, delta_link = delta_round("groups/delta", {"$select": "id,displayName,members"})
    merged: dict[str, list[str]] = {}
    for item in items:
        merged.setdefault(item["id"], []).extend(m["id"] for m in item.get("members@delta", []))
    everyone = next(g for g in conn.admin.export()["groups"] if g["displayName"] == "All Employees")
    assert sum(1 for i in items if i["id"] == everyone["id"]) == -(-len(everyone["members"]) // 10)
    assert merged[everyone["id"]] == [m["id"] for m in everyone["members"]]
    member = everyone["members"][0]["id"]
    conn.admin.remove_member(everyone["id"], member)
    items, _ = delta_round(delta_link)
    assert items == [
        {
            "id": everyone["id"],
            "displayName": "All Employees",
            "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": member, "@removed": {"reason": "deleted"}}],
        }
    ]
    conn.admin.add_member(everyone["id"], member)


def test_paginated_run_follows_next_links_until_the_delta_link(conn):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    conn.admin.settings(page_size=25)

    async def run():
        hook = KiotaRequestAdapterHook(conn_id=CONN_ID, timeout=30)
        try:
            return await hook.paginated_run(url="users/delta", query_parameters={"$select": "id"})
        finally:
            await hook.close()

    responses = asyncio.run(run())
    assert len(responses) == 3
    assert "@odata.deltaLink" in responses[-1]
    assert sum(len(r["value"]) for r in responses) == len(conn.admin.export()["users"])


def test_allowed_hosts_must_name_the_bare_host_for_the_bearer_token(conn, monkeypatch):
    """kiota attaches the token only to hosts named in allowed_hosts, compared without the port."""
    port_only = conn.connection()
    port_only["extra"]["allowed_hosts"] = conn.graph_url.split("://", 1)[1]
    monkeypatch.setenv("AIRFLOW_CONN_EMU_PORT_ONLY", json.dumps(port_only))
    with pytest.raises(PermissionError):
        delta_round("users/delta", {"$select": "id"}, conn_id="emu_port_only")

    bare = conn.connection()
    bare["extra"]["allowed_hosts"] = "127.0.0.1"
    monkeypatch.setenv("AIRFLOW_CONN_EMU_BARE_HOST", json.dumps(bare))
    conn.admin.settings(page_size=20)
    items, _ = delta_round("users/delta", {"$select": "id"}, conn_id="emu_bare_host")
    assert len(items) == len(conn.admin.export()["users"])


def test_next_link_to_another_port_is_refused_by_assert_allowed_host(conn):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    async def run():
        hook = KiotaRequestAdapterHook(conn_id=CONN_ID, timeout=30)
        try:
            await hook.assert_allowed_host(f"{conn.graph_url}/v1.0/users/delta?$skiptoken=x")
            with pytest.raises(ValueError):
                await hook.assert_allowed_host("http://127.0.0.1:1/v1.0/users/delta?$skiptoken=x")
        finally:
            await hook.close()

    asyncio.run(run())


def test_the_hook_rides_out_throttling_with_retry_after(conn):
    conn.admin.reset_stats()
    conn.admin.set_faults({"kind": "throttle", "count": 2, "retry_after": 1, "path": "/v1.0/users/delta"})
    items, _ = delta_round("users/delta", {"$select": "id"})
    assert len(items) == len(conn.admin.export()["users"])
    assert conn.admin.stats()["requests"]["/v1.0/users/delta"]["429"] == 2


def test_expired_delta_link_raises_sync_state_not_found(conn):
    from airflow.exceptions import AirflowBadRequest

    _, delta_link = delta_round("users/delta", {"$select": "id"})
    conn.admin.settings(delta_link_max_age_seconds=0)
    with pytest.raises(AirflowBadRequest) as err:
        delta_round(delta_link)
    assert "syncStateNotFound" in str(err.value)


def test_a_wrong_client_secret_fails_authentication(conn, monkeypatch):
    from azure.core.exceptions import ClientAuthenticationError

    wrong = conn.connection()
    wrong["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_EMU_WRONG_SECRET", json.dumps(wrong))
    with pytest.raises(ClientAuthenticationError) as err:
        delta_round("users/delta", {"$select": "id"}, conn_id="emu_wrong_secret")
    assert "invalid_client" in str(err.value)


def test_msal_based_sync_credential_gets_a_token(conn):
    """The synchronous (MSAL) credential works too, with instance discovery off, as the connection sets it."""
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        conn.tenant_id,
        conn.client_id,
        conn.client_secret,
        authority=conn.authority,
        disable_instance_discovery=True,
        connection_verify=conn.ca_file,
    )
    token = credential.get_token("https://graph.microsoft.com/.default")
    assert token.token.count(".") == 2 and token.expires_on > 0


def test_graph_over_https_with_an_advertised_host_name(tmp_path, monkeypatch):
    """--graph-tls: for clients that reach the emulator by a name other than localhost (kiota sends a
    bearer token over plain http only to localhost, 127.0.0.1 and ::1)."""
    running = start_emulator(DEMO_TENANT, tmp_path / "tls", extra_args=["--graph-tls", "--advertise-host", "localhost"])
    try:
        connection = running.connection()
        assert running.graph_url.startswith("https://localhost:")
        assert connection["schema"] == "https"
        assert connection["extra"]["allowed_hosts"].split(",")[0] == "localhost"
        monkeypatch.setenv("AIRFLOW_CONN_EMU_TLS", running.connection_json())
        running.admin.settings(page_size=25)
        items, delta_link = delta_round("users/delta", {"$select": "id"}, conn_id="emu_tls")
        assert len(items) == 60
        assert delta_link.startswith("https://localhost:")
    finally:
        running.stop()
