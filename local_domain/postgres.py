"""The local PostgreSQL the tests use: 127.0.0.1:5432, user postgres without a password.

    python -m local_domain.postgres installed   exit 0 when it answers or a cluster is configured, else 1
    python -m local_domain.postgres start       start Debian's clusters unless it answers; wait until it does

``ensure_running`` is the one start-up (scripts/test.sh and the ``postgres_url`` test fixture use it).
Installing PostgreSQL is scripts/test.sh's part (apt, before this runs). Needs psycopg2 (the .venv).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
CONF_ROOT = Path("/etc/postgresql")


class PostgresError(RuntimeError):
    """PostgreSQL is not installed or does not answer; the message says what was tried."""


def say(message: str) -> None:
    print(f"postgres: {message}", file=sys.stderr, flush=True)


def connect(dbname: str = "postgres"):
    """A psycopg2 connection as USER to HOST:PORT."""
    import psycopg2

    return psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=dbname, connect_timeout=3)


def ready() -> bool:
    try:
        connect().close()
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def cluster_versions() -> list[str]:
    """The versions with a cluster configuration under /etc/postgresql (Debian's layout)."""
    return sorted(p.name for p in CONF_ROOT.iterdir()) if CONF_ROOT.is_dir() else []


def installed() -> bool:
    return ready() or bool(cluster_versions())


def ensure_running(timeout: float = 60) -> None:
    """Start the local clusters (cluster "main" of every version) unless PostgreSQL answers; wait until it does."""
    if ready():
        return
    versions = cluster_versions()
    if not versions:
        raise PostgresError(
            f"PostgreSQL is not installed ({CONF_ROOT} holds no cluster); run scripts/test.sh, which installs and starts it"
        )
    sudo = [] if os.geteuid() == 0 or shutil.which("sudo") is None else ["sudo"]
    outputs = []
    for version in versions:
        say(f"starting PostgreSQL {version} (cluster main)")
        args = [*sudo, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
        result = subprocess.run(args, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
        outputs.append(f"{' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.25)
    raise PostgresError(f"PostgreSQL does not accept connections as {USER} on {HOST}:{PORT}:\n" + "\n".join(outputs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_domain.postgres", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("installed", "start"))
    args = parser.parse_args(argv)
    if args.command == "installed":
        return 0 if installed() else 1
    if ready():
        say(f"PostgreSQL answers on {HOST}:{PORT}")
        return 0
    try:
        ensure_running()
    except PostgresError as exc:
        print(f"postgres: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
