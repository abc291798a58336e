"""The emulator's state directory: client secret, readiness file, and the Airflow connection built from them."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

STATE_FILE = "emulator.json"
SECRET_FILE = "client_secret"
DEFAULT_CONN_ID = "tenant_emulator"


def ensure_client_secret(state_dir: str | os.PathLike) -> str:
    """The client secret kept in state_dir/client_secret (mode 0600): created on first use, reused after."""
    path = Path(state_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            os.chmod(path, 0o600)
            return value
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)
    return value


def write_state(state_dir: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write state_dir/emulator.json atomically (the readiness signal)."""
    path = Path(state_dir) / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_state(state_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(state_dir) / STATE_FILE).read_text(encoding="utf-8"))


def remove_state(state_dir: str | os.PathLike, pid: int | None = None) -> None:
    """Remove emulator.json, only if it belongs to pid (when given)."""
    path = Path(state_dir) / STATE_FILE
    try:
        if pid is not None and json.loads(path.read_text(encoding="utf-8")).get("pid") != pid:
            return
        path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def connection_dict(info: dict[str, Any], client_secret: str) -> dict[str, Any]:
    """The Airflow connection (conn type msgraph) for KiotaRequestAdapterHook against this emulator.

    allowed_hosts lists the bare host name, because kiota attaches the bearer token only to requests
    whose host name (without port) is in it, and the host:port of the Graph listener, which is the
    netloc the hook's assert_allowed_host compares next links with (it also accepts the base URL's
    netloc on its own).
    """
    scheme, graph_netloc = info["graph_url"].rstrip("/").split("://", 1)
    bare = graph_netloc.rsplit(":", 1)[0].strip("[]")
    return {
        "conn_type": "msgraph",
        "host": graph_netloc,
        "schema": scheme,
        "login": info["client_id"],
        "password": client_secret,
        "extra": {
            "tenant_id": info["tenant_id"],
            "authority": info["authority"],
            "allowed_hosts": f"{bare},{graph_netloc}",
            "verify": info["ca_file"],
            "disable_instance_discovery": True,
        },
    }


def vault_connection_dict(info: dict[str, Any], client_secret: str) -> dict[str, Any]:
    """The Airflow connection (conn type azure_key_vault, domain_sync.credentials.keyvault) of the emulator's
    Key Vault: the same app registration as Graph, tokens from the emulator's authority. The vault is
    reached at an address, not a *.vault.azure.net name, so the client's check that the challenge's
    resource matches the vault's domain is off."""
    return {
        "conn_type": "azure_key_vault",
        "host": info["vault_url"],
        "login": info["client_id"],
        "password": client_secret,
        "extra": {
            "tenant_id": info["tenant_id"],
            "authority": info["authority"],
            "ca_file": info["ca_file"],
            "verify_challenge_resource": False,
        },
    }


def connection_json(state_dir: str | os.PathLike, vault: bool = False) -> str:
    info = read_state(state_dir)
    secret = (Path(state_dir) / SECRET_FILE).read_text(encoding="utf-8").strip()
    return json.dumps(vault_connection_dict(info, secret) if vault else connection_dict(info, secret))
