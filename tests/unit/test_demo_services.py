"""The demo's Airflow services: `--serve` is a flag of `run`, and stop ends every recorded service's process group."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from local_domain import alive, demo, demo_services


def test_serve_is_a_flag_of_run(monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run", lambda tenant, serve=False: calls.append((tenant, serve)) or 0)
    assert demo.main(["run", "my-tenant.json", "--serve"]) == 0
    assert demo.main(["run"]) == 0
    assert calls == [("my-tenant.json", True), (str(demo.DEFAULT_TENANT), False)]


def test_stop_ends_the_recorded_services_and_their_children(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_services, "SERVICES_DIR", tmp_path)
    monkeypatch.setattr(demo_services, "PIDS", tmp_path / "pids.json")
    # A service that started a child in its own process group, as the scheduler starts task processes.
    code = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    service = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    threading.Thread(target=service.wait, daemon=True).start()  # reaped as the demo's exit would reap it
    (tmp_path / "pids.json").write_text(json.dumps({"scheduler": service.pid}))
    time.sleep(0.5)
    demo_services.stop()
    assert not alive(service.pid, group=True)
    assert not (tmp_path / "pids.json").exists()
    assert "Airflow services stopped (scheduler)" in capsys.readouterr().out


def test_services_share_the_secrets_and_reach_the_api_on_the_ui_port(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_services, "SERVICES_DIR", tmp_path)
    monkeypatch.setenv("DEMO_UI_PORT", "18123")
    first = demo_services.service_env({"AIRFLOW_HOME": "h"})
    again = demo_services.service_env({"AIRFLOW_HOME": "h"})
    assert first["AIRFLOW__API_AUTH__JWT_SECRET"] == again["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
