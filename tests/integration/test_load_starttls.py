"""StartTLS on port 389 (connection extra `start_tls: true`), with the certificate validated, against Samba."""

from __future__ import annotations

import json
import ssl

import certifi
import pytest

import domain_sync.apply.stage as apply_stage
from domain_sync.domain import DomainConnectionError, connect, endpoint_from_connection
from tests.fixtures.sync_env import tenant_group, tenant_user

pytestmark = pytest.mark.integration


class _Conn:
    def __init__(self, data):
        self.host, self.port, self.login, self.password = data["host"], data["port"], data["login"], data["password"]
        self.extra_dejson = data["extra"]


def starttls_connection(local_domain, **extra) -> dict:
    data = local_domain.connection()
    data["port"] = 389
    data["extra"] = {**data["extra"], "start_tls": True, **extra}
    return data


def test_starttls_binds_only_over_a_validated_tls_session(local_domain):
    conn = connect(endpoint_from_connection(_Conn(starttls_connection(local_domain)), "ldap_domain"))
    try:
        assert conn.server.port == 389 and not conn.server.ssl
        assert conn.tls_started and isinstance(conn.socket, ssl.SSLSocket) and conn.bound
    finally:
        conn.unbind()

    # Samba accepts simple binds in clear text on 389: a failed StartTLS must not fall back to one.
    for extra in ({"ca_file": certifi.where()}, {"tls_server_name": "not-the-dc.example.test"}):
        endpoint = endpoint_from_connection(_Conn(starttls_connection(local_domain, **extra)), "ldap_domain")
        with pytest.raises(DomainConnectionError, match="ldap://"):
            connect(endpoint)


def test_the_pipeline_syncs_over_starttls(sync_env, local_domain, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LDAP_DOMAIN", json.dumps(starttls_connection(local_domain, start_tls="true")))
    opened = []
    real_connect = apply_stage.connect

    def recording_connect(endpoint, timeout=30.0, collect_usage=False, run_id=None):
        conn = real_connect(endpoint, timeout, collect_usage, run_id=run_id)
        opened.append((endpoint.port, conn.tls_started))
        return conn

    monkeypatch.setattr(apply_stage, "connect", recording_connect)
    ana, bob = tenant_user("ana", "Ana Lima"), tenant_user("bob", "Bob Stone")
    sync_env.start_tenant({"users": [ana, bob], "groups": [tenant_group("Team", [ana, bob])]})
    result = sync_env.run()  # users get an initial password: unicodePwd travels inside the TLS session
    assert result["apply"]["statuses"] == {"applied": result["apply"]["planned"]}
    assert opened and set(opened) == {(389, True)}
    assert len(sync_env.synced_entries(["cn"])) == 3
