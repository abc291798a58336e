"""The demo on this machine (scripts/demo.sh and scripts/stop.sh run this after scripts/bootstrap.sh).

    python -m local_domain.demo run [TENANT_FILE] [--serve]    (default: emulator/tenants/demo.json)
    python -m local_domain.demo stop [--emulator-only]

``run`` starts the local Samba AD DC (127.0.0.1, .local/domain) and the Graph emulator with a tenant
(.local/emulator; reused when it already runs with the same tenant file), prepares an Airflow home (SQLite,
.local/airflow), runs the sync DAG once through Airflow and prints what it did and how to reach the domain.
A tenant file other than the one of the last successful run means a full resync that replaces it.
``--serve`` then leaves Airflow's api-server, scheduler and dag-processor running (local_domain/demo_services.py)
and prints the UI's address and login. ``stop`` stops them, the emulator and the DC; their data stays in
.local/ for the next start.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import local_domain
from local_domain import LocalDomainError, alive, demo_services

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
DOMAIN_DIR = LOCAL / "domain"
EMULATOR_DIR = LOCAL / "emulator"
EMULATOR_STATE = EMULATOR_DIR / "emulator.json"
EMULATOR_TENANT = EMULATOR_DIR / "tenant-file"
SYNCED_TENANT = LOCAL / "synced-tenant"
DEFAULT_TENANT = Path("emulator/tenants/demo.json")
DEMO_ADDRESS = "127.0.0.1"
APPLY_POOL = "domain_writes"


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why."""


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _tail(path: Path, lines: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else f"(no {path})"


def emulator_pid() -> int | None:
    """The PID the running emulator recorded, or None when there is no state file."""
    try:
        return int(json.loads(EMULATOR_STATE.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_emulator() -> None:
    if not EMULATOR_STATE.is_file():
        return
    pid = emulator_pid()
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.25)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        print("stop: emulator stopped")
    EMULATOR_STATE.unlink(missing_ok=True)


def stop(emulator_only: bool = False) -> None:
    """Stop what ``run`` left running: Airflow's services, the Graph emulator and (unless emulator_only) the
    local DC."""
    if not emulator_only:
        demo_services.stop()
    stop_emulator()
    if not emulator_only and DOMAIN_DIR.is_dir():
        local_domain.stop(DOMAIN_DIR)


def _environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{ROOT / 'include'}:{ROOT}")


def ensure_emulator(tenant: Path) -> None:
    """Reuse the emulator when it runs with ``tenant``, else (re)start it with that tenant file."""
    running_tenant = ""
    if EMULATOR_STATE.is_file() and EMULATOR_TENANT.is_file():
        pid = emulator_pid()
        if pid is not None and alive(pid):
            running_tenant = EMULATOR_TENANT.read_text().strip()
    if running_tenant == str(tenant):
        return
    if running_tenant or EMULATOR_TENANT.is_file():
        stop_emulator()
    EMULATOR_DIR.mkdir(parents=True, exist_ok=True)
    EMULATOR_STATE.unlink(missing_ok=True)
    say(f"starting the Graph emulator with {tenant.name}")
    log = EMULATOR_DIR / "emulator.log"
    with log.open("a") as out:
        subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--tenant", str(tenant), "--state-dir", str(EMULATOR_DIR)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_environment(), start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while not EMULATOR_STATE.is_file():
        if time.monotonic() >= deadline:
            raise DemoError(f"{_tail(log, 20)}\nthe emulator wrote no {EMULATOR_STATE}")
        time.sleep(0.5)
    EMULATOR_TENANT.write_text(f"{tenant}\n")


def _airflow(env: dict[str, str], log: Path, *args: str, append: bool = False) -> int:
    airflow = Path(sys.executable).with_name("airflow")
    with log.open("a" if append else "w") as out:
        return subprocess.run([str(airflow), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False).returncode


def run(tenant_file: Path | str = DEFAULT_TENANT, serve: bool = False) -> int:
    """The demo, end to end; 0 when the DAG run succeeded. `serve`: leave Airflow's services running."""
    tenant = Path(tenant_file)
    if not tenant.is_file():
        print(f"demo: tenant file {tenant} not found", file=sys.stderr)
        return 2
    tenant = tenant.resolve()

    say(f"local domain in .local/domain ({DEMO_ADDRESS})")
    local_domain.provision(DOMAIN_DIR, DEMO_ADDRESS)
    local_domain.start(DOMAIN_DIR, DEMO_ADDRESS)
    ensure_emulator(tenant)

    data_dir = LOCAL / "data"
    env = _environment()
    env.update(
        AIRFLOW_HOME=str(LOCAL / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        DOMAIN_SYNC_DATA_DIR=str(data_dir),
        TQDM_DISABLE="1",
        GX_ANALYTICS_ENABLED="False",
    )
    emulator_connection = subprocess.run(
        [sys.executable, "-m", "emulator", "connection", "--state-dir", str(EMULATOR_DIR)],
        env=env, capture_output=True, text=True, check=False,
    )
    if emulator_connection.returncode != 0:
        raise DemoError(f"python -m emulator connection failed:\n{emulator_connection.stderr}")
    env["AIRFLOW_CONN_MSGRAPH_TENANT"] = emulator_connection.stdout.strip()
    env["AIRFLOW_CONN_LDAP_DOMAIN"] = local_domain.connection_json(local_domain.connection(DOMAIN_DIR)).strip()

    say("Airflow home in .local/airflow (SQLite)")
    migrate_log = LOCAL / "airflow-migrate.log"
    if _airflow(env, migrate_log, "db", "migrate") != 0:
        raise DemoError(f"{_tail(migrate_log, 30)}\nairflow db migrate failed (log: {migrate_log})")
    env["DOMAIN_SYNC_APPLY_POOL"] = APPLY_POOL
    if _airflow(env, migrate_log, "pools", "set", APPLY_POOL, "1", "writers to the domain", append=True) != 0:
        raise DemoError(f"{_tail(migrate_log, 30)}\nairflow pools set {APPLY_POOL} failed (log: {migrate_log})")

    services_env = dict(env)  # without the one-off settings of a tenant swap below
    # The tenant file of the last successful sync: another one means a full resync that replaces it.
    conf = "{}"
    if SYNCED_TENANT.is_file() and SYNCED_TENANT.read_text().strip() != str(tenant):
        say("the tenant file changed: full resync, objects of the previous tenant are deleted")
        conf = '{"full_resync": true}'
        # A different tenant is expected to be smaller or larger than the last one: no broken-read check,
        # and the guards let this deliberate replacement through (a production swap approves the plan's
        # digest instead: approve_plan).
        env["DOMAIN_SYNC_MIN_FULL_READ_SHARE"] = "0"
        env.update({"DOMAIN_SYNC_MAX_DELETES": "1000000", "DOMAIN_SYNC_MAX_DELETE_SHARE": "1",
                    "DOMAIN_SYNC_MAX_MEMBER_REMOVALS": "1000000", "DOMAIN_SYNC_MAX_MEMBER_REMOVAL_SHARE": "1"})
    say("running the tenant_to_domain_sync DAG (log: .local/last-run.log)")
    run_log = LOCAL / "last-run.log"
    status = _airflow(env, run_log, "dags", "test", "tenant_to_domain_sync", "-c", conf)

    print(flush=True)
    subprocess.run([sys.executable, "-m", "domain_sync.summary", str(data_dir)], env=env, check=False)
    log_text = run_log.read_text(errors="replace")
    if status != 0 or "state=failed" in log_text or "DagRunState.FAILED" in log_text:
        print("demo: the DAG run failed; see .local/last-run.log", file=sys.stderr)
        return 1
    SYNCED_TENANT.write_text(f"{tenant}\n")
    print(_info())
    if serve:
        say("starting Airflow's api-server, scheduler and dag-processor (they stay running)")
        try:
            print(demo_services.start(services_env))
        except RuntimeError as exc:
            raise DemoError(str(exc)) from exc
    return 0


def _info() -> str:
    d = DOMAIN_DIR
    base, bind = local_domain.BASE_DN, local_domain.BIND_DN
    emulator = EMULATOR_STATE.read_text().replace("\n", "")[:200] if EMULATOR_STATE.is_file() else "(no state file)"
    return f"""
The domain (left running):
  LDAPS     ldaps://{DEMO_ADDRESS}:{local_domain.LDAPS_PORT}  (certificate name {local_domain.SERVER_NAME})
  CA file   {d}/private/tls/ca.pem
  bind DN   {bind}
  password  in {d}/admin.password
  synced    OU=AADDC Users,{base}
  e.g.      LDAPTLS_CACERT={d}/private/tls/ca.pem ldapsearch -H ldaps://{local_domain.SERVER_NAME} \\
              -D '{bind}' -y {d}/admin.password \\
              -b 'OU=AADDC Users,{base}' '(objectClass=user)' cn
            (needs "{DEMO_ADDRESS} {local_domain.SERVER_NAME}" in /etc/hosts, or use -H ldaps://{DEMO_ADDRESS} with
             LDAPTLS_REQCERT=allow)
The tenant emulator (left running): {emulator}
Stop them (and the Airflow services of --serve) with: bash scripts/stop.sh"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_domain.demo", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="the demo, end to end")
    run_parser.add_argument("tenant", nargs="?", default=str(DEFAULT_TENANT), metavar="TENANT_FILE")
    run_parser.add_argument("--serve", action="store_true",
                            help="leave Airflow's api-server (UI), scheduler and dag-processor running")
    stop_parser = commands.add_parser("stop", help="stop the emulator and the local DC")
    stop_parser.add_argument("--emulator-only", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run(args.tenant, serve=args.serve)
        stop(args.emulator_only)
        return 0
    except (LocalDomainError, DemoError) as exc:
        prefix = "local-domain" if isinstance(exc, LocalDomainError) else "demo"
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
