"""The command line: serve (state dir, readiness file, SIGTERM), connection, generate."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from emulator.generate import dumps_tenant, generate_tenant
from emulator.testing import PROJECT_ROOT, start_emulator

from .conftest import DEMO_TENANT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run([sys.executable, "-m", "emulator", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_serve_writes_state_and_cleans_up_on_sigterm(tmp_path):
    state = tmp_path / "state"
    emu = start_emulator(DEMO_TENANT, state, tenant_id="cli-tenant", client_id="cli-client")
    try:
        info = json.loads((state / "emulator.json").read_text())
        assert set(info) == {"graph_url", "authority", "vault_url", "tenant_id", "client_id", "ca_file", "pid"}
        assert info["pid"] == emu.pid
        assert (info["tenant_id"], info["client_id"]) == ("cli-tenant", "cli-client")
        assert info["graph_url"].startswith("http://127.0.0.1:")
        assert info["authority"].startswith("https://127.0.0.1:")
        assert (state / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert stat.S_IMODE((state / "client_secret").stat().st_mode) == 0o600
        assert emu.admin.health()["status"] == "ok"

        printed = run_cli("connection", "--state-dir", str(state))
        assert printed.returncode == 0
        connection = json.loads(printed.stdout)
        assert connection == emu.connection()
        assert connection["conn_type"] == "msgraph" and connection["schema"] == "http"
        assert connection["host"] == info["graph_url"].split("://")[1]
        assert connection["password"] == (state / "client_secret").read_text().strip()
        assert connection["extra"]["authority"] == info["authority"]
        assert connection["extra"]["verify"] == info["ca_file"]
        assert connection["extra"]["allowed_hosts"].split(",") == ["127.0.0.1", connection["host"]]
    finally:
        code = emu.stop()
    assert code == 0
    assert not (state / "emulator.json").exists()


def test_restart_reuses_secret_and_certificates(tmp_path):
    state = tmp_path / "state"
    first = start_emulator(DEMO_TENANT, state)
    secret, ca = first.client_secret, (state / "ca.pem").read_bytes()
    first.stop()
    second = start_emulator(DEMO_TENANT, state)
    try:
        assert second.client_secret == secret
        assert (state / "ca.pem").read_bytes() == ca
    finally:
        second.stop()


def test_connection_without_a_running_emulator_fails(tmp_path):
    result = run_cli("connection", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""


def test_generate_command_writes_the_generator_output(tmp_path):
    out = tmp_path / "t.json"
    result = run_cli("generate", "--users", "30", "--groups", "6", "--seed", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == dumps_tenant(generate_tenant(30, 6, seed=5))
