"""Start the emulator as a subprocess, for pytest fixtures and scripts.

    emu = start_emulator("emulator/tenants/demo.json", tmp_path / "emu")
    os.environ["AIRFLOW_CONN_TENANT_EMULATOR"] = emu.connection_json()
    ...
    emu.stop()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from .admin import EmulatorAdmin
from .state import DEFAULT_CONN_ID, SECRET_FILE, STATE_FILE, connection_dict, vault_connection_dict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class EmulatorStartError(RuntimeError):
    pass


@dataclass
class RunningEmulator:
    graph_url: str
    authority: str
    ca_file: str
    tenant_id: str
    client_id: str
    client_secret: str
    state_dir: Path
    process: subprocess.Popen
    vault_url: str | None = None
    admin: EmulatorAdmin = field(init=False)

    def __post_init__(self) -> None:
        self.admin = EmulatorAdmin(self.graph_url, ca_file=self.ca_file)

    @property
    def pid(self) -> int:
        return self.process.pid

    def connection(self) -> dict[str, Any]:
        """The Airflow connection as a dict (contains the client secret)."""
        info = {
            "graph_url": self.graph_url,
            "authority": self.authority,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "ca_file": self.ca_file,
        }
        return connection_dict(info, self.client_secret)

    def connection_json(self) -> str:
        """The Airflow connection JSON for AIRFLOW_CONN_<ID> (contains the client secret)."""
        return json.dumps(self.connection())

    def vault_connection(self) -> dict[str, Any]:
        """The Airflow connection of the emulator's Key Vault (conn type azure_key_vault; has the secret)."""
        info = {"vault_url": self.vault_url, "authority": self.authority, "tenant_id": self.tenant_id,
                "client_id": self.client_id, "ca_file": self.ca_file}
        return vault_connection_dict(info, self.client_secret)

    def vault_connection_json(self) -> str:
        return json.dumps(self.vault_connection())

    def airflow_env(self, conn_id: str = DEFAULT_CONN_ID) -> dict[str, str]:
        """{"AIRFLOW_CONN_<CONN_ID>": connection JSON}, to merge into os.environ or a subprocess env."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json()}

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    tenant_file: str | os.PathLike,
    state_dir: str | os.PathLike,
    timeout: float = 30,
    *,
    host: str = "127.0.0.1",
    graph_port: int = 0,
    token_port: int = 0,
    tenant_id: str | None = None,
    client_id: str | None = None,
    extra_args: list[str] | None = None,
) -> RunningEmulator:
    """Run `python -m emulator serve` (sys.executable) and wait until its emulator.json appears.

    The subprocess's output goes to state_dir/emulator.log.
    """
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    ready = state / STATE_FILE
    try:
        ready.unlink()
    except FileNotFoundError:
        pass
    cmd = [
        sys.executable, "-m", "emulator", "serve",
        "--tenant", str(Path(tenant_file).resolve()),
        "--state-dir", str(state),
        "--host", host,
        "--graph-port", str(graph_port),
        "--token-port", str(token_port),
    ]
    if tenant_id:
        cmd += ["--tenant-id", tenant_id]
    if client_id:
        cmd += ["--client-id", client_id]
    cmd += list(extra_args or [])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(state / "emulator.log", "ab") as log:
        process = subprocess.Popen(cmd, cwd=str(PROJECT_ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = (state / "emulator.log").read_text(encoding="utf-8", errors="replace")[-4000:]
            raise EmulatorStartError(f"the emulator exited with code {process.returncode}:\n{tail}")
        try:
            info = json.loads(ready.read_text(encoding="utf-8"))
            if info.get("pid") == process.pid:
                break
        except (FileNotFoundError, ValueError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise EmulatorStartError(f"the emulator did not become ready within {timeout} s")
        time.sleep(0.05)
    secret = (state / SECRET_FILE).read_text(encoding="utf-8").strip()
    return RunningEmulator(
        graph_url=info["graph_url"],
        authority=info["authority"],
        ca_file=info["ca_file"],
        tenant_id=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=secret,
        state_dir=state,
        process=process,
        vault_url=info.get("vault_url"),
    )
