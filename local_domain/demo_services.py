"""Airflow's services for the demo (``demo.sh --serve``): api-server (UI, REST API, the "Domain sync" page),
scheduler and dag-processor on the demo's Airflow home (SQLite, LocalExecutor), left running in the
background; ``stop`` (scripts/stop.sh) ends them.

Their pids, logs and the secrets they share are in .local/airflow-services/. The UI signs in with the
simple auth manager: user ``admin``, password in .local/airflow/simple_auth_manager_passwords.json.generated.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from local_domain import alive

ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = ROOT / ".local" / "airflow-services"
PIDS = SERVICES_DIR / "pids.json"
SERVICES = ("api-server", "scheduler", "dag-processor")
DEFAULT_PORT = 8080
UNPAUSED = ("tenant_to_domain_sync", "domain_sync_watchdog", "domain_drift_check")


def port() -> int:
    return int(os.environ.get("DEMO_UI_PORT") or DEFAULT_PORT)


def _secrets() -> dict[str, str]:
    """The JWT and API secrets every service must share (kept across restarts)."""
    path = SERVICES_DIR / "secrets.json"
    if path.is_file():
        return json.loads(path.read_text())
    values = {"AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
              "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def service_env(env: dict[str, str]) -> dict[str, str]:
    base_url = f"http://127.0.0.1:{port()}"
    return {
        **env, **_secrets(),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port()),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }


def running() -> dict[str, int]:
    try:
        pids = json.loads(PIDS.read_text())
    except (OSError, ValueError):
        return {}
    return {name: pid for name, pid in pids.items() if alive(pid)}


def _ready(timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        try:
            with opener.open(f"http://127.0.0.1:{port()}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False


def start(env: dict[str, str]) -> str:
    """Start the services (after stopping ones left from an earlier demo); returns how to reach the UI."""
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    stop(quiet=True)
    env = service_env(env)
    airflow = str(Path(sys.executable).with_name("airflow"))
    commands = {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port()), "--workers", "1"],
                "scheduler": ["scheduler"], "dag-processor": ["dag-processor"]}
    pids = {}
    for name in SERVICES:
        with (SERVICES_DIR / f"{name}.log").open("ab") as log:
            pids[name] = subprocess.Popen([airflow, *commands[name]], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True).pid
    PIDS.write_text(json.dumps(pids))
    if not _ready():
        raise RuntimeError(f"the api-server did not answer on port {port()}; see {SERVICES_DIR}/api-server.log")
    for dag_id in UNPAUSED:
        subprocess.run([airflow, "dags", "unpause", dag_id], env=env, capture_output=True, check=False)
    password_file = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    try:
        password = json.loads(password_file.read_text())["admin"]
    except (OSError, ValueError, KeyError):
        password = f"(in {password_file})"
    return (f"Airflow (left running: api-server, scheduler, dag-processor; logs in {SERVICES_DIR}):\n"
            f"  UI        http://127.0.0.1:{port()}/   login admin / {password}\n"
            f"            (the password is in {password_file})\n"
            f"  status    http://127.0.0.1:{port()}/plugin/domain-sync   (Browse > Domain sync)\n"
            f"  unpaused  {', '.join(UNPAUSED)}: the sync runs every 5 minutes, the drift check daily; the full "
            f"resync and the on-demand sync are triggered from the UI")


def stop(quiet: bool = False) -> None:
    """End the services the demo started (by their recorded pids and process groups)."""
    pids = running()
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 20
    while any(alive(pid, group=True) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    PIDS.unlink(missing_ok=True)
    if pids and not quiet:
        print(f"stop: Airflow services stopped ({', '.join(pids)})")
