"""The emulator over HTTP: token endpoint, bearer check, Graph endpoints, admin API, faults."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from emulator.admin import AdminError, EmulatorAdmin

USER_T = "#microsoft.graph.user"


def graph_error_shape(doc) -> bool:
    err = doc.get("error", {})
    return isinstance(err.get("code"), str) and isinstance(err.get("message"), str) and "request-id" in err.get("innerError", {})


# --------------------------------------------------------------------------- token endpoint


def test_token_endpoint_issues_a_bearer_token_for_the_right_secret(http_client, server):
    status, headers, doc = http_client.token_request(
        {
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        }
    )
    assert status == 200
    assert headers["Cache-Control"].startswith("no-store")
    assert doc["token_type"] == "Bearer"
    assert doc["expires_in"] == 3599
    assert doc["access_token"].count(".") == 2


def test_token_endpoint_refuses_a_wrong_secret_with_invalid_client(http_client, server):
    status, _h, doc = http_client.token_request(
        {
            "client_id": server.client_id,
            "client_secret": "wrong",
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        }
    )
    assert status == 401
    assert doc["error"] == "invalid_client"
    assert "error_description" in doc


def test_token_endpoint_refuses_a_wrong_client_id(http_client, server):
    status, _h, doc = http_client.token_request(
        {
            "client_id": "someone-else",
            "client_secret": server.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        }
    )
    assert (status, doc["error"]) == (401, "invalid_client")


def test_token_endpoint_refuses_an_unknown_tenant_and_other_grants(http_client, server):
    form = {"client_id": server.client_id, "client_secret": server.client_secret,
            "grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"}
    status, _h, doc = http_client.token_request(form, path="/other-tenant/oauth2/v2.0/token")
    assert (status, doc["error"]) == (400, "invalid_tenant")
    status, _h, doc = http_client.token_request({**form, "grant_type": "password"})
    assert (status, doc["error"]) == (400, "unsupported_grant_type")
    status, _h, doc = http_client.token_request({**form, "scope": "User.Read"})
    assert (status, doc["error"]) == (400, "invalid_scope")


def test_discovery_documents_point_at_the_token_endpoint(http_client, server):
    status, _h, doc = http_client.token_request({}, path=f"/{server.tenant_id}/v2.0/.well-known/openid-configuration",
                                                method="GET")
    assert status == 200
    assert doc["token_endpoint"] == f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token"
    assert doc["issuer"].startswith(server.authority)
    status, _h, doc = http_client.token_request({}, path="/common/discovery/instance?api-version=1.1", method="GET")
    assert status == 200
    assert doc["tenant_discovery_endpoint"].endswith("/v2.0/.well-known/openid-configuration")


# --------------------------------------------------------------------------- bearer


def test_graph_requires_a_bearer_token(http_client):
    status, _h, doc = http_client.graph("GET", "/v1.0/users")
    assert status == 401
    assert doc["error"]["code"] == "InvalidAuthenticationToken"
    assert graph_error_shape(doc)


def test_graph_refuses_a_forged_token(http_client):
    good = http_client.token()
    header, payload, _sig = good.split(".")
    status, _h, doc = http_client.graph("GET", "/v1.0/users", token=f"{header}.{payload}.AAAA")
    assert (status, doc["error"]["code"]) == (401, "InvalidAuthenticationToken")


# --------------------------------------------------------------------------- Graph endpoints


def test_users_list_pages_with_top_and_next_links_on_the_host_header(http_client, server):
    token = http_client.token()
    port = urlsplit(server.graph_url).port
    host = f"localhost:{port}"
    status, _h, doc = http_client.graph("GET", "/v1.0/users?$top=15&$select=id,displayName", token=token,
                                        headers={"Host": host})
    assert status == 200
    assert len(doc["value"]) == 15
    assert set(doc["value"][0]) == {"id", "displayName"}
    ids = [u["id"] for u in doc["value"]]
    nxt = doc["@odata.nextLink"]
    assert nxt.startswith(f"http://{host}/v1.0/users?$skiptoken=")
    while nxt:
        status, _h, doc = http_client.graph("GET", nxt, token=token, headers={"Host": host})
        assert status == 200
        ids += [u["id"] for u in doc["value"]]
        nxt = doc.get("@odata.nextLink")
    assert len(ids) == len(set(ids)) == 40


def test_top_outside_1_to_999_is_a_bad_request(http_client):
    token = http_client.token()
    status, _h, doc = http_client.graph("GET", "/v1.0/users?$top=1000", token=token)
    assert (status, doc["error"]["code"]) == (400, "Request_BadRequest")


def test_unsupported_query_options_are_refused(http_client):
    token = http_client.token()
    status, _h, doc = http_client.graph("GET", "/v1.0/users?$filter=startswith(displayName,'A')", token=token)
    assert (status, doc["error"]["code"]) == (400, "Request_UnsupportedQuery")


def test_delta_pages_end_with_a_delta_link_on_the_host_header(http_client, server):
    token = http_client.token()
    server.tenant.settings.page_size = 16
    host = f"127.0.0.1:{urlsplit(server.graph_url).port}"
    status, _h, doc = http_client.graph("GET", "/v1.0/users/delta?$select=id,displayName", token=token)
    pages = [doc]
    while "@odata.nextLink" in doc:
        assert doc["@odata.nextLink"].startswith(f"http://{host}/v1.0/users/delta?$skiptoken=")
        assert "@odata.deltaLink" not in doc
        status, _h, doc = http_client.graph("GET", doc["@odata.nextLink"], token=token)
        pages.append(doc)
    assert [len(p["value"]) for p in pages] == [16, 16, 8]
    assert doc["@odata.deltaLink"].startswith(f"http://{host}/v1.0/users/delta?$deltatoken=")
    status, _h, doc = http_client.graph("GET", doc["@odata.deltaLink"], token=token)
    assert status == 200 and doc["value"] == [] and "@odata.deltaLink" in doc


def test_prefer_maxpagesize_sets_the_delta_page_size(http_client):
    token = http_client.token()
    status, headers, doc = http_client.graph("GET", "/v1.0/users/delta", token=token,
                                             headers={"Prefer": "odata.maxpagesize=7"})
    assert status == 200
    assert len(doc["value"]) == 7
    assert headers["Preference-Applied"] == "odata.maxpagesize=7"


def test_deltatoken_latest_over_http(http_client, server):
    token = http_client.token()
    status, _h, doc = http_client.graph("GET", "/v1.0/groups/delta?$deltatoken=latest", token=token)
    assert status == 200 and doc["value"] == []
    link = doc["@odata.deltaLink"]
    gid = server.tenant.export()["groups"][3]["id"]
    EmulatorAdmin(server.graph_url).update_group(gid, {"description": "new"})
    _s, _h, doc = http_client.graph("GET", link, token=token)
    assert [g["id"] for g in doc["value"]] == [gid]


def test_expired_delta_link_answers_sync_state_not_found(http_client, server):
    token = http_client.token()
    _s, _h, doc = http_client.graph("GET", "/v1.0/users/delta?$deltatoken=latest", token=token)
    EmulatorAdmin(server.graph_url).settings(delta_link_max_age_seconds=0)
    time.sleep(0.01)
    status, _h, doc = http_client.graph("GET", doc["@odata.deltaLink"], token=token)
    assert status == 400
    assert doc["error"]["code"] == "syncStateNotFound"
    assert graph_error_shape(doc)


def test_get_one_object_and_404_shape(http_client, server):
    token = http_client.token()
    user = server.tenant.export()["users"][0]
    status, _h, doc = http_client.graph("GET", f"/v1.0/users/{user['id']}?$select=displayName", token=token)
    assert status == 200
    assert (doc["id"], doc["displayName"]) == (user["id"], user["displayName"])
    status, _h, doc = http_client.graph("GET", "/v1.0/users/00000000-0000-0000-0000-000000000000", token=token)
    assert (status, doc["error"]["code"]) == (404, "Request_ResourceNotFound")
    assert graph_error_shape(doc)


def test_group_members_are_paged(http_client, server):
    token = http_client.token()
    everyone = server.tenant.export()["groups"][0]
    assert len(everyone["members"]) == 40
    status, _h, doc = http_client.graph("GET", f"/v1.0/groups/{everyone['id']}/members?$top=25", token=token)
    assert status == 200
    got = [m["id"] for m in doc["value"]]
    assert doc["value"][0]["@odata.type"] == USER_T
    _s, _h, doc = http_client.graph("GET", doc["@odata.nextLink"], token=token)
    got += [m["id"] for m in doc["value"]]
    assert "@odata.nextLink" not in doc
    assert got == [m["id"] for m in everyone["members"]]


# --------------------------------------------------------------------------- admin API


def test_admin_user_lifecycle_shows_in_delta(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    token = http_client.token()
    _s, _h, doc = http_client.graph("GET", "/v1.0/users/delta?$deltatoken=latest&$select=id,displayName", token=token)
    link = doc["@odata.deltaLink"]

    created = admin.create_user({"displayName": "Zoë Ørsted", "userPrincipalName": "zoe.orsted@corp.example.test"})
    assert created["id"]
    updated = admin.update_user(created["id"], {"displayName": "Zoë Ørsted-Li"})
    assert updated["displayName"] == "Zoë Ørsted-Li"
    _s, _h, doc = http_client.graph("GET", link, token=token)
    assert doc["value"] == [{"id": created["id"], "displayName": "Zoë Ørsted-Li"}]
    link = doc["@odata.deltaLink"]

    admin.delete_user(created["id"])
    _s, _h, doc = http_client.graph("GET", link, token=token)
    assert doc["value"] == [{"id": created["id"], "@removed": {"reason": "changed"}}]
    link = doc["@odata.deltaLink"]

    admin.restore_user(created["id"])
    _s, _h, doc = http_client.graph("GET", link, token=token)
    assert doc["value"] == [{"id": created["id"], "displayName": "Zoë Ørsted-Li"}]
    link = doc["@odata.deltaLink"]

    admin.delete_user(created["id"], permanent=True)
    _s, _h, doc = http_client.graph("GET", link, token=token)
    assert doc["value"] == [{"id": created["id"], "@removed": {"reason": "deleted"}}]


def test_admin_group_and_member_endpoints(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    users = server.tenant.export()["users"]
    g = admin.create_group({"displayName": "Ad hoc", "members": [{"id": users[0]["id"]}]})
    assert admin.members(g["id"]) == [{"@odata.type": USER_T, "id": users[0]["id"]}]
    assert admin.add_member(g["id"], users[1]["id"]) == {"@odata.type": USER_T, "id": users[1]["id"]}
    admin.remove_member(g["id"], users[0]["id"])
    assert [m["id"] for m in admin.members(g["id"])] == [users[1]["id"]]
    with pytest.raises(AdminError) as err:
        admin.add_member(g["id"], users[1]["id"])
    assert err.value.status == 400
    admin.update_group(g["id"], {"description": "changed"})
    admin.delete_group(g["id"])
    assert admin.object_status("groups", g["id"])["status"] == "softDeleted"
    admin.restore_group(g["id"])
    admin.delete_group(g["id"], permanent=True)
    assert admin.object_status("groups", g["id"])["status"] == "deleted"
    with pytest.raises(AdminError) as err:
        admin.restore_group(g["id"])
    assert err.value.status == 404 and err.value.code == "Request_ResourceNotFound"


def test_admin_adds_members_of_other_types_and_groups_delta_keeps_their_types(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    token = http_client.token()
    g = admin.create_group({"displayName": "Things"})
    _s, _h, doc = http_client.graph("GET", "/v1.0/groups/delta?$select=displayName,members&$deltatoken=latest", token=token)
    link = doc["@odata.deltaLink"]
    device = admin.create_device({"displayName": "Kiosk", "deviceId": "dev-1"})
    app = admin.create_service_principal({"displayName": "Backup job", "appId": "app-1"})
    contact = admin.create_contact({"displayName": "Vendor", "mail": "vendor@elsewhere.test"})
    assert admin.add_member(g["id"], device["id"]) == {"@odata.type": "#microsoft.graph.device", "id": device["id"]}
    admin.add_member(g["id"], app["id"], "#microsoft.graph.servicePrincipal")
    admin.add_member(g["id"], contact["id"])
    _s, _h, doc = http_client.graph("GET", link, token=token)
    (item,) = doc["value"]
    assert item["members@delta"] == [
        {"@odata.type": "#microsoft.graph.device", "id": device["id"]},
        {"@odata.type": "#microsoft.graph.servicePrincipal", "id": app["id"]},
        {"@odata.type": "#microsoft.graph.orgContact", "id": contact["id"]},
    ]
    _s, _h, doc = http_client.graph("GET", f"/v1.0/groups/{g['id']}/members?$select=displayName", token=token)
    assert [m["displayName"] for m in doc["value"]] == ["Kiosk", "Backup job", "Vendor"]
    admin.delete_object("devices", device["id"], permanent=True)
    assert admin.object_status("devices", device["id"])["status"] == "deleted"
    assert admin.stats()["objects"]["servicePrincipals"] == 1


def test_users_delta_over_http_carries_manager_delta(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    token = http_client.token()
    users = server.tenant.export()["users"]
    _s, _h, doc = http_client.graph("GET", "/v1.0/users/delta?$select=displayName,manager&$deltatoken=latest", token=token)
    current = (users[5]["manager"] or {}).get("id")
    boss = next(u["id"] for u in users if u["id"] not in (users[5]["id"], current))
    admin.update_user(users[5]["id"], {"manager": {"id": boss}})
    _s, _h, doc = http_client.graph("GET", doc["@odata.deltaLink"], token=token)
    assert doc["value"] == [{"id": users[5]["id"], "displayName": users[5]["displayName"],
                             "manager@delta": [{"@odata.type": USER_T, "id": boss}]}]
    status, _h, doc = http_client.graph("GET", "/v1.0/users/delta?$expand=manager", token=token)
    assert status == 400 and doc["error"]["code"] == "Request_UnsupportedQuery"  # as on Graph: $expand is not for delta


def test_admin_settings_and_stats(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    assert admin.settings(page_size=5, members_page_size=2)["page_size"] == 5
    assert admin.settings()["members_page_size"] == 2
    with pytest.raises(AdminError):
        admin.settings(page_size=0)
    token = http_client.token()
    http_client.graph("GET", "/v1.0/users/delta", token=token)
    http_client.graph("GET", "/v1.0/users/delta")
    stats = admin.stats()
    assert stats["requests"]["/v1.0/users/delta"] == {"200": 1, "401": 1}
    assert stats["token_requests"]["/{tenant}/oauth2/v2.0/token"] == {"200": 1}
    assert stats["objects"]["users"] == 40 and stats["objects"]["groups"] == 8
    admin.reset_stats()
    assert admin.stats()["requests"] == {}


# --------------------------------------------------------------------------- faults


def test_throttle_for_the_next_n_requests_with_retry_after(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    token = http_client.token()
    admin.set_faults({"kind": "throttle", "count": 2, "retry_after": 3, "path": "/v1.0/users/delta"})
    results = [http_client.graph("GET", "/v1.0/users/delta", token=token) for _ in range(3)]
    assert [r[0] for r in results] == [429, 429, 200]
    assert results[0][1]["Retry-After"] == "3"
    assert results[0][2]["error"]["code"] == "TooManyRequests"
    assert graph_error_shape(results[0][2])
    # Another path is untouched while the rule is active.
    admin.set_faults({"kind": "throttle", "count": 1, "path": "/v1.0/groups"})
    assert http_client.graph("GET", "/v1.0/users", token=token)[0] == 200


def test_throttle_without_retry_after_header(http_client, server):
    EmulatorAdmin(server.graph_url).set_faults({"kind": "throttle", "count": 1})
    status, headers, _doc = http_client.graph("GET", "/v1.0/users", token=http_client.token())
    assert status == 429 and "Retry-After" not in headers


def test_throttle_at_a_seeded_rate_is_repeatable(http_client, server):
    admin = EmulatorAdmin(server.graph_url)
    token = http_client.token()

    def pattern():
        admin.clear_faults()
        admin.set_faults({"kind": "throttle", "rate": 0.5, "seed": 42, "retry_after": 1})
        return [http_client.graph("GET", "/v1.0/users?$top=1", token=token)[0] for _ in range(20)]

    first, second = pattern(), pattern()
    assert first == second
    assert 3 <= first.count(429) <= 17 and first.count(200) >= 3


@pytest.mark.parametrize("status,code", [(500, "generalException"), (503, "serviceNotAvailable"), (504, "gatewayTimeout")])
def test_server_errors_for_the_next_n_requests(http_client, server, status, code):
    EmulatorAdmin(server.graph_url).set_faults({"kind": "error", "status": status, "count": 2})
    token = http_client.token()
    results = [http_client.graph("GET", "/v1.0/groups", token=token) for _ in range(3)]
    assert [r[0] for r in results] == [status, status, 200]
    assert results[0][2]["error"]["code"] == code
    assert graph_error_shape(results[0][2])


def test_slow_responses(http_client, server):
    EmulatorAdmin(server.graph_url).set_faults({"kind": "delay", "delay": 0.4, "count": 1})
    token = http_client.token()
    start = time.monotonic()
    status, _h, _d = http_client.graph("GET", "/v1.0/users?$top=1", token=token)
    assert status == 200 and time.monotonic() - start >= 0.4
    start = time.monotonic()
    http_client.graph("GET", "/v1.0/users?$top=1", token=token)
    assert time.monotonic() - start < 0.4


def test_dropped_connection_closes_without_a_response(http_client, server):
    EmulatorAdmin(server.graph_url).set_faults({"kind": "drop", "count": 1, "path": "/v1.0/users"})
    token = http_client.token()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
        http_client.graph("GET", "/v1.0/users", token=token)
    assert http_client.graph("GET", "/v1.0/users", token=token)[0] == 200
    assert EmulatorAdmin(server.graph_url).stats()["requests"]["/v1.0/users"]["dropped"] == 1


def test_token_endpoint_refusing_the_client(http_client, server):
    EmulatorAdmin(server.graph_url).set_faults({"kind": "refuse_token", "count": 1})
    form = {"client_id": server.client_id, "client_secret": server.client_secret,
            "grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"}
    status, _h, doc = http_client.token_request(form)
    assert (status, doc["error"]) == (401, "invalid_client")
    assert http_client.token_request(form)[0] == 200


def test_fault_spec_errors_are_bad_requests(server):
    admin = EmulatorAdmin(server.graph_url)
    for bad in ({"kind": "explode"}, {"kind": "throttle", "rate": 2}, {"kind": "delay"},
                {"kind": "throttle", "path": "users"}, {"kind": "refuse_token", "target": "graph"},
                {"kind": "error", "status": 200}, {"kind": "drop", "color": "red"}):
        with pytest.raises(AdminError) as err:
            admin.set_faults(bad)
        assert err.value.status == 400
    assert admin.faults() == []


def test_keep_alive_connection_serves_many_requests(http_client, server):
    token = http_client.token()
    parts = urlsplit(server.graph_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    sock_ids = set()
    for _ in range(5):
        conn.request("GET", "/v1.0/users?$top=2", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200
        json.loads(resp.read())
        sock_ids.add(id(conn.sock))
    conn.close()
    assert len(sock_ids) == 1


def test_admin_is_not_subject_to_faults(server):
    admin = EmulatorAdmin(server.graph_url)
    admin.set_faults({"kind": "drop"})
    assert admin.health()["status"] == "ok"
    assert admin.stats()["objects"]["users"] == 40
    admin.clear_faults()
