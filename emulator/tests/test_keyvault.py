"""The emulator's Key Vault: secrets set, get, update and list (paged by nextLink) behind the bearer
challenge, over raw HTTP and through azure-keyvault-secrets' SecretClient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.state import vault_connection_dict

VAULT_SCOPE = "https://vault.azure.net/.default"
API = "api-version=7.6"


@pytest.fixture
def vault_token(server, http_client):
    status, _h, doc = http_client.token_request({"client_id": server.client_id, "client_secret": server.client_secret,
                                                 "grant_type": "client_credentials", "scope": VAULT_SCOPE})
    assert status == 200
    return doc["access_token"]


@pytest.fixture
def client(server):
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    credential = ClientSecretCredential(server.tenant_id, server.client_id, server.client_secret,
                                        authority=server.authority, disable_instance_discovery=True,
                                        connection_verify=str(server.certs.ca_file))
    return SecretClient(server.vault_url, credential, verify_challenge_resource=False,
                        connection_verify=str(server.certs.ca_file))


def test_a_request_without_a_token_gets_the_key_vault_challenge(server, http_client):
    status, headers, doc = http_client.vault("GET", f"/secrets/anything?{API}")
    assert status == 401 and doc["error"]["code"] == "Unauthorized"
    assert headers["WWW-Authenticate"] == (f'Bearer authorization="{server.authority}/{server.tenant_id}", '
                                           f'resource="https://vault.azure.net"')


def test_a_graph_token_is_refused_by_the_vault(server, http_client):
    status, headers, doc = http_client.vault("GET", f"/secrets/anything?{API}", token=http_client.token())
    assert status == 401 and "audience" in doc["error"]["message"] and "WWW-Authenticate" in headers


def test_set_get_update_over_http(server, http_client, vault_token):
    status, _h, doc = http_client.vault("PUT", f"/secrets/pw-1?{API}", token=vault_token,
                                         body={"value": "v1", "contentType": "password", "tags": {"a": "b"},
                                               "attributes": {"exp": 2_000_000_000}})
    assert status == 200 and doc["value"] == "v1" and doc["tags"] == {"a": "b"}
    assert doc["attributes"]["exp"] == 2_000_000_000 and doc["attributes"]["enabled"] is True
    version = doc["id"].rsplit("/", 1)[1]
    assert doc["id"] == f"{server.vault_url}/secrets/pw-1/{version}"
    status, _h, doc = http_client.vault("PATCH", f"/secrets/pw-1/{version}?{API}", token=vault_token,
                                         body={"tags": {"done": "yes"}, "attributes": {"enabled": False}})
    assert status == 200 and "value" not in doc and doc["tags"] == {"done": "yes"}
    status, _h, doc = http_client.vault("GET", f"/secrets/pw-1/{version}?{API}", token=vault_token)
    assert status == 403 and doc["error"]["innererror"]["code"] == "SecretDisabled"
    assert http_client.vault("GET", f"/secrets/missing?{API}", token=vault_token)[2]["error"]["code"] == "SecretNotFound"
    assert http_client.vault("GET", "/secrets/pw-1", token=vault_token)[0] == 400  # no api-version
    assert http_client.vault("PUT", f"/secrets/bad_name?{API}", token=vault_token, body={"value": "x"})[0] == 400


def test_listing_pages_with_next_links(server, http_client, vault_token):
    for i in range(5):
        http_client.vault("PUT", f"/secrets/s-{i}?{API}", token=vault_token, body={"value": str(i)})
    names, path = [], f"/secrets?{API}&maxresults=2"
    while path:
        status, _h, doc = http_client.vault("GET", path, token=vault_token)
        assert status == 200 and len(doc["value"]) <= 2 and all("value" not in item for item in doc["value"])
        names += [item["id"].rsplit("/", 1)[1] for item in doc["value"]]
        path = doc["nextLink"] and doc["nextLink"].replace(server.vault_url, "")
    assert names == [f"s-{i}" for i in range(5)]


def test_secret_client_sets_lists_versions_across_pages_and_updates(server, client):
    for i in range(30):  # more than one page of versions (25 at most a page)
        client.set_secret("password-change-x", f"pw-{i}", tags={"n": str(i)})
    # the client's first request went without a token and was challenged; the others carried one
    assert server.stats.snapshot()["vault_requests"]["/secrets/{name}"] == {"401": 1, "200": 30}
    versions = list(client.list_properties_of_secret_versions("password-change-x"))
    assert len(versions) == 30 and {v.tags["n"] for v in versions} == {str(i) for i in range(30)}
    assert client.get_secret("password-change-x").value == "pw-29"
    first = next(v for v in versions if v.tags["n"] == "0")
    assert client.get_secret("password-change-x", first.version).value == "pw-0"
    client.update_secret_properties("password-change-x", first.version, tags={"done": "1"}, enabled=False)
    again = next(v for v in client.list_properties_of_secret_versions("password-change-x") if v.version == first.version)
    assert again.enabled is False and again.tags == {"done": "1"}
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    client.set_secret("initial-password-y", "secret", expires_on=expires, content_type="password")
    props = next(p for p in client.list_properties_of_secrets() if p.name == "initial-password-y")
    assert props.expires_on == expires and props.content_type == "password"


def test_scripted_faults_reach_the_vault(server, http_client, vault_token):
    server.faults.add({"kind": "error", "target": "vault", "status": 503, "count": 1})
    assert http_client.vault("GET", f"/secrets?{API}", token=vault_token)[0] == 503
    assert http_client.vault("GET", f"/secrets?{API}", token=vault_token)[0] == 200


def test_the_vault_connection_names_the_vault_and_the_authority(server):
    info = {"vault_url": server.vault_url, "authority": server.authority, "tenant_id": server.tenant_id,
            "client_id": server.client_id, "ca_file": str(server.certs.ca_file)}
    conn = vault_connection_dict(info, server.client_secret)
    assert conn["conn_type"] == "azure_key_vault" and conn["host"] == server.vault_url
    assert conn["extra"]["verify_challenge_resource"] is False and conn["extra"]["authority"] == server.authority
