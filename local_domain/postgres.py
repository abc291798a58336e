"""The local PostgreSQL the tests use: 127.0.0.1:5432, user postgres without a password.

    python -m local_domain.postgres installed   exit 0 when it answers or a cluster is configured, else 1
    python -m local_domain.postgres start       start Debian's clusters unless it answers; wait until it does
    python -m local_domain.postgres ensure      install it from Debian when it is not installed, then start

``install`` is the one installation and ``ensure_running`` the one start-up (scripts/test.sh runs
``ensure``; the ``postgres_url`` test fixture starts it). Needs psycopg2 (the .venv).
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
# The shell helpers bootstrap.sh and test.sh share: apt_install is the one way packages are installed.
LIB_SH = Path(__file__).resolve().parents[1] / "scripts" / "lib.sh"
# The tests connect as USER over TCP without a password, as on the project's machines.
TRUST_LINES = (f"host all {USER} 127.0.0.1/32 trust", f"host all {USER} ::1/128 trust")


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


def _as_root(args: list[str]) -> list[str]:
    """args, through sudo unless this runs as root (or there is no sudo: the command then says why it failed)."""
    return args if os.geteuid() == 0 or shutil.which("sudo") is None else ["sudo", *args]


def install() -> bool:
    """Install Debian's postgresql, with its Recommends, unless PostgreSQL answers or a cluster is configured,
    then trust USER's TCP logins from 127.0.0.1 and ::1 in every cluster's pg_hba.conf. True when it installed.
    Its services are not started by the package (apt_install forbids it); ``ensure_running`` starts them."""
    if installed():
        return False
    say("PostgreSQL is not installed: installing it from Debian")
    apt = ["bash", "-c", 'source "$0" && apt_install --recommends postgresql', str(LIB_SH)]
    result = subprocess.run(apt, check=False, stdin=subprocess.DEVNULL, env={**os.environ, "SCRIPT_NAME": "postgres"})
    if result.returncode != 0:
        raise PostgresError(f"installing Debian's postgresql failed (exit {result.returncode}; apt's output above)")
    for hba in sorted(CONF_ROOT.glob("*/main/pg_hba.conf")):
        trust_local_logins(hba)
    return True


def trust_local_logins(hba: Path) -> None:
    """Put TRUST_LINES first in `hba` (the first matching line wins) unless the first of them is there."""
    try:
        if any(line.startswith(TRUST_LINES[0]) for line in hba.read_text().splitlines()):
            return
    except PermissionError:  # 0640, the postgres account's: sed below runs as root
        pass
    say(f"allowing password-less TCP logins as {USER} from 127.0.0.1 and ::1 in {hba}")
    sed = _as_root(["sed", "-i", "1i " + "\\n".join(TRUST_LINES), str(hba)])
    result = subprocess.run(sed, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise PostgresError(f"{hba}: adding the trust lines failed: {' '.join(sed)} -> {result.returncode}: "
                            f"{result.stderr.strip()}")


def ensure_running(timeout: float = 60) -> None:
    """Start the local clusters (cluster "main" of every version) unless PostgreSQL answers; wait until it does."""
    if ready():
        return
    versions = cluster_versions()
    if not versions:
        raise PostgresError(
            f"PostgreSQL is not installed ({CONF_ROOT} holds no cluster); run scripts/test.sh, which installs and starts it"
        )
    outputs = []
    for version in versions:
        say(f"starting PostgreSQL {version} (cluster main)")
        args = _as_root(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
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
    parser.add_argument("command", choices=("installed", "start", "ensure"))
    args = parser.parse_args(argv)
    if args.command == "installed":
        return 0 if installed() else 1
    if ready():
        say(f"PostgreSQL answers on {HOST}:{PORT}")
        return 0
    try:
        if args.command == "ensure":
            install()
        ensure_running()
    except PostgresError as exc:
        print(f"postgres: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
