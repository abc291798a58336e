"""Fixtures for the emulator's tests.

Airflow reads AIRFLOW_HOME when it is first imported; point it at a throwaway folder (unless the
run already set one) before any test imports the provider's hook.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if not os.environ.get("AIRFLOW_HOME"):
    _airflow_home = tempfile.mkdtemp(prefix="emulator-tests-airflow-")
    os.environ["AIRFLOW_HOME"] = _airflow_home
    atexit.register(shutil.rmtree, _airflow_home, True)

from emulator.certs import ensure_certs
from emulator.generate import generate_tenant
from emulator.listeners import Emulator
from emulator.tenant import Settings, Tenant

DEMO_TENANT = ROOT / "emulator" / "tenants" / "demo.json"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@pytest.fixture(scope="session")
def cert_paths(tmp_path_factory):
    return ensure_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def small_doc() -> dict:
    return generate_tenant(users=40, groups=8, seed=11)


@pytest.fixture
def server(cert_paths, small_doc):
    """An in-process emulator (both listeners) over a 40-user, 8-group tenant."""
    tenant = Tenant(settings=Settings())
    tenant.load(small_doc)
    emu = Emulator(
        tenant,
        tenant_id="tenant-under-test",
        client_id="client-under-test",
        client_secret="s3cret-value-for-tests",
        certs=cert_paths,
    )
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


class Http:
    """Minimal HTTP helpers against one in-process emulator."""

    def __init__(self, emu: Emulator):
        self.emu = emu

    def token_request(self, form: dict[str, str], path: str | None = None, method: str = "POST"):
        parts = urlsplit(self.emu.authority)
        ctx = ssl.create_default_context(cafile=str(self.emu.certs.ca_file))
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10)
        try:
            body = urlencode(form) if method == "POST" else None
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
            conn.request(method, path or f"/{self.emu.tenant_id}/oauth2/v2.0/token", body, headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, dict(resp.getheaders()), (json.loads(raw) if raw else None)
        finally:
            conn.close()

    def token(self) -> str:
        status, _h, doc = self.token_request(
            {
                "client_id": self.emu.client_id,
                "client_secret": self.emu.client_secret,
                "grant_type": "client_credentials",
                "scope": GRAPH_SCOPE,
            }
        )
        assert status == 200, doc
        return doc["access_token"]

    def graph(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ):
        parts = urlsplit(self.emu.graph_url)
        return self._request(http.client.HTTPConnection(parts.hostname, parts.port, timeout=10), method, path,
                             token, body, headers)

    def vault(self, method: str, path: str, *, token: str | None = None, body: Any = None):
        """A request to the Key Vault listener (HTTPS, the emulator's CA)."""
        parts = urlsplit(self.emu.vault_url)
        ctx = ssl.create_default_context(cafile=str(self.emu.certs.ca_file))
        return self._request(http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10),
                             method, path, token, body, None)

    @staticmethod
    def _request(conn, method: str, path: str, token: str | None, body: Any, headers: dict[str, str] | None):
        try:
            hdrs = dict(headers or {})
            if token:
                hdrs["Authorization"] = f"Bearer {token}"
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            if path.startswith("http"):
                split = urlsplit(path)
                path = f"{split.path}?{split.query}" if split.query else split.path
            conn.request(method, path, data, hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, dict(resp.getheaders()), (json.loads(raw) if raw else None)
        finally:
            conn.close()


@pytest.fixture
def http_client(server) -> Http:
    return Http(server)
