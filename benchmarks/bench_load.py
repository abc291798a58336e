"""Benchmark of the load (plan + apply) against bare ldap3 writes (prints figures; not a test).

    .venv/bin/python benchmarks/bench_load.py --users 10000 --connections 4

Generates a tenant with the emulator's generator, serves it with the emulator and runs the real
extract, transform and validate stages. Then, each on a freshly provisioned Samba DC in a folder of
its own (deleted objects leave tombstones that slow later writes, DESIGN.md section 7), on a spare
loopback address:

  sync  the plan stage (reads the empty domain, plans the creates and the manager references)
        and the apply stage with --connections LDAPS connections, as the DAG runs them;
  bare  the same writes (every add of the plan, then every manager modify) with plain ldap3
        over the same number of LDAPS connections, one thread per connection, nothing else.

Passwords are off for both by default (DOMAIN_SYNC_INITIAL_PASSWORD=none); --passwords sets a random
initial password on every user in both. Needs root (Samba).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]
LOCAL_DOMAIN = ROOT / "scripts" / "local-domain"
# Not the DC's realm: Samba treats sAMAccountName@realm as every account's implied userPrincipalName, so
# a tenant on the realm's own domain name can collide with it (a case the bench is not about).
TENANT_DOMAIN = "contoso.example"


def local_domain(command: str, directory: Path, address: str | None = None) -> str:
    args = ["bash", str(LOCAL_DOMAIN), command, str(directory)] + (["--address", address] if address else [])
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"scripts/local-domain {command} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def fresh_domain(directory: Path, address: str) -> dict:
    """Provision and start a DC in an empty folder; its Airflow connection as a dict."""
    local_domain("provision", directory, address)
    local_domain("start", directory)
    return json.loads(local_domain("connection", directory))


def address_free(address: str) -> bool:
    for port in (389, 636):
        try:
            with socket.create_connection((address, port), timeout=1):
                return False
        except OSError:
            pass
    return True


def stage_records(workdir: Path, users: int, groups: int, seed: int) -> None:
    """Tenant -> emulator -> extract, transform, validate (the real stages) in run 'bench'."""
    from domain_sync.pipeline import run_stage
    from emulator.testing import start_emulator

    tenant = workdir / "tenant.json"
    subprocess.run([sys.executable, "-m", "emulator", "generate", "--users", str(users), "--groups", str(groups),
                    "--seed", str(seed), "--domain", TENANT_DOMAIN, "--out", str(tenant)], cwd=ROOT, check=True)
    emulator = start_emulator(tenant, workdir / "emulator")
    try:
        os.environ["AIRFLOW_CONN_MSGRAPH_TENANT"] = emulator.connection_json()
        for name in ("extract_users", "extract_groups", "transform", "validate"):
            run_stage(name, "bench", {})
    finally:
        emulator.stop()


def timed_sync(connection: dict) -> dict:
    """Plan and apply of run 'bench' into the domain of `connection`; seconds of each."""
    from domain_sync.pipeline import run_stage

    os.environ["AIRFLOW_CONN_LDAP_DOMAIN"] = json.dumps(connection)
    started = time.perf_counter()
    plan = run_stage("plan", "bench", {})
    planned = time.perf_counter()
    cpu = time.process_time()
    applied = run_stage("apply", "bench", {})
    done = time.perf_counter()
    cpu = time.process_time() - cpu
    assert applied["statuses"] == {"applied": applied["planned"]}, applied["statuses"]
    return {"plan_s": planned - started, "apply_s": done - planned, "writes": applied["total_writes"],
            "changes": plan["changes"], "cpu_s": cpu}


def bare_connection(connection: dict):
    import ldap3

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=connection["extra"]["ca_file"],
                    valid_names=[connection["extra"]["tls_server_name"]], version=ssl.PROTOCOL_TLS_CLIENT)
    server = ldap3.Server(connection["host"], port=connection["port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, connection["login"], connection["password"], auto_bind=ldap3.AUTO_BIND_NO_TLS)


def bare_writes(plan_file: Path, anchor_attribute: str, passwords: bool) -> tuple[list, list, list]:
    """The plan's writes as plain ldap3 arguments: containers, adds, modifies."""
    from benchmarks.bench_sync import bare_password
    from domain_sync.domain import ANCHOR_BINARY_ATTRIBUTES

    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    containers, adds, modifies = [], [], []
    for change in plan["changes"]:
        values = dict(change.get("values", {}))
        if change["op"] == "create_container":
            containers.append((change["dn"], values.pop("objectClass"), values))
        elif change["op"] == "create":
            if anchor_attribute.lower() in ANCHOR_BINARY_ATTRIBUTES:
                values[anchor_attribute] = [bytes.fromhex(v) for v in values[anchor_attribute]]
            if passwords and change["kind"] == "user":
                values["unicodePwd"] = [bare_password()]
            adds.append((change["dn"], values.pop("objectClass"), values))
        elif change["op"] == "modify":
            modifies.append((change["dn"], {k: [("MODIFY_REPLACE", v)] for k, v in values.items()}))
        else:
            raise SystemExit(f"the bench plans only creates and modifies, not {change['op']}")
    return containers, adds, modifies


def timed_bare(connection: dict, containers: list, adds: list, modifies: list, connections: int) -> dict:
    conns = [bare_connection(connection) for _ in range(connections)]
    for dn, classes, attrs in containers:
        assert conns[0].add(dn, classes, attrs), conns[0].result
    failures = []

    def run(conn, items, write):
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            if not write(conn, item):
                failures.append(conn.result)

    started = time.perf_counter()
    cpu = time.process_time()
    for items, write in ((iter(adds), lambda c, a: c.add(*a)), (iter(modifies), lambda c, m: c.modify(*m))):
        lock = threading.Lock()
        threads = [threading.Thread(target=run, args=(c, items, write)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for c in conns:
        c.unbind()
    assert not failures, failures[:3]
    return {"apply_s": elapsed, "writes": len(adds) + len(modifies), "cpu_s": cpu}


def report(users: int, adds: int, modifies: int, args, syncs: list[dict], bares: list[dict]) -> None:
    sync = min(syncs, key=lambda r: r["plan_s"] + r["apply_s"])
    bare = min(bares, key=lambda r: r["apply_s"])
    sync_total = sync["plan_s"] + sync["apply_s"]
    print(f"\n{users} users, {adds} adds + {modifies} manager modifies, {args.connections} LDAPS connections, "
          f"passwords {'on' if args.passwords else 'off'}, a fresh Samba DC per measurement"
          + (f", best of {args.rounds} rounds" if args.rounds > 1 else ""))
    print(f"  sync  plan {sync['plan_s']:6.1f} s + apply {sync['apply_s']:6.1f} s = {sync_total:6.1f} s  "
          f"{users / sync_total:7.1f} users/s  ({sync['writes'] / sync['apply_s']:7.1f} writes/s in apply, "
          f"client CPU {sync['cpu_s']:.1f} s)")
    print(f"  bare  ldap3 writes                      {bare['apply_s']:6.1f} s  "
          f"{users / bare['apply_s']:7.1f} users/s  ({bare['writes'] / bare['apply_s']:7.1f} writes/s, "
          f"client CPU {bare['cpu_s']:.1f} s)")
    print(f"  sync / bare throughput: {bare['apply_s'] / sync_total:.2f} (plan + apply), "
          f"{bare['apply_s'] / sync['apply_s']:.2f} (apply alone)")
    if args.rounds > 1:
        print("  every round (s): sync " + ", ".join(f"{r['plan_s'] + r['apply_s']:.1f}" for r in syncs)
              + "; bare " + ", ".join(f"{r['apply_s']:.1f}" for r in bares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each side this many times (order alternating), report the best")
    parser.add_argument("--address", default="127.0.0.9", help="a spare loopback address for the DCs")
    parser.add_argument("--passwords", action="store_true", help="a random initial password on every user")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary folder, removed)")
    args = parser.parse_args()
    if not address_free(args.address):
        raise SystemExit(f"{args.address} has LDAP ports in use: pass a spare loopback address with --address")

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "DOMAIN_SYNC_DATA_DIR": str(workdir / "data"),
        "DOMAIN_SYNC_APPLY_CONNECTIONS": str(args.connections),
        "DOMAIN_SYNC_INITIAL_PASSWORD": "random" if args.passwords else "none",
        "DOMAIN_SYNC_MAX_APPLY_FAILURE_SHARE": "0",
        "TQDM_DISABLE": "1",
        "GX_ANALYTICS_ENABLED": "False",
    })
    import logging

    logging.basicConfig(level=logging.WARNING)
    from domain_sync.config import Settings
    from domain_sync.runs import RunFolder

    settings = Settings.from_env()
    plan_file = RunFolder(settings.runs_dir, "bench").plan
    domains: list[Path] = []

    def next_domain(name: str) -> dict:
        domains.append(workdir / f"dc-{len(domains) + 1}-{name}")
        return fresh_domain(domains[-1], args.address)

    syncs: list[dict] = []
    bares: list[dict] = []
    try:
        print(f"staging {args.users} users, {args.groups} groups (emulator, extract, transform, validate) ...",
              flush=True)
        connection = next_domain("sync")
        os.environ["AIRFLOW_CONN_LDAP_DOMAIN"] = json.dumps(connection)  # transform reads the domain's schema
        stage_records(workdir, args.users, args.groups, args.seed)
        for round_number in range(args.rounds):
            for side in ("sync", "bare") if round_number % 2 == 0 else ("bare", "sync"):
                if side == "sync":
                    if syncs or round_number:
                        connection = next_domain("sync")
                    syncs.append(timed_sync(connection))
                else:
                    containers, adds, modifies = bare_writes(plan_file, settings.anchor_attribute, args.passwords)
                    bares.append(timed_bare(next_domain("bare"), containers, adds, modifies, args.connections))
                print(f"  round {round_number + 1} {side}: {(syncs if side == 'sync' else bares)[-1]}", flush=True)
                local_domain("stop", domains[-1])
                shutil.rmtree(domains[-1], ignore_errors=True)
    finally:
        for directory in domains:
            subprocess.run(["bash", str(LOCAL_DOMAIN), "stop", str(directory)], capture_output=True, check=False)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    users = len([a for a in adds if "user" in a[1]])
    report(users, len(adds), len(modifies), args, syncs, bares)


if __name__ == "__main__":
    main()
