"""The sync benchmark (issue "Performance", section "The benchmark"): prints figures, writes them (not a test).

    .venv/bin/python benchmarks/bench_sync.py --size small
        [--parts ceiling,dry-run,full,no-change,incremental,incremental-bare,freshness]
        [--passwords off,on] [--freshness-samples 12] [--freshness-minutes 10] [--out benchmarks/results]

Sizes (benchmarks/sync_report.py SIZES): tiny 500 users (to try the command), small 10,000 users / 1,000
groups / 50,000 member values, large 100,000 / 10,000 / 500,000 (the first group holds every user), xl
250,000 users (on demand). The tenant comes from `python -m emulator generate ... --memberships N`.

Each measurement gets a freshly provisioned Samba DC (deleted objects leave tombstones that slow later
writes), a fresh emulator serving the tenant and a fresh data folder. Every stage runs in a process of its
own, as Airflow runs a task (`domain_sync.pipeline.run_stage`); a stage's time is its own (the stage's
module imported first; the process's start and imports are `process_seconds`), its peak is the
process's peak RSS (VmHWM: its own since exec, not the parent's).

Parts (each runnable alone; results merge into the size's JSON file):
  ceiling      the plan of a dry run on an empty DC, then bare ldap3 writes of exactly its writes (containers,
               creates, manager modifies, member adds) in the plan's phases over apply_connections LDAPS
               connections, nothing else; passwords on: every new user gets an initial password.
  dry-run      the stages of a first sync up to its plan (a dry run) into an empty DC: their time and peak
               RSS without the hour of writes a large first sync takes (passwords off).
  full         the full sync through every stage into an empty DC, as objects/s; ceiling_ratio is its
               throughput over the ceiling's, per password setting. The parts after it run it too (they
               need the synced domain); without 'full' in --parts its figures are not recorded.
  no-change    after a full sync (passwords off), a run with nothing changed: its writes and time, with the
               full plan, and with the incremental plan where the settings have a plan mode.
  incremental  after a full sync (passwords off), the size's fixed change recipe through the emulator's
               admin API (attribute changes, new users, deletes, renames, membership changes), then a run.
  incremental-bare  after a full sync (passwords off), the same recipe drawn from the last users, planned by
               a dry run, then exactly that plan's writes as bare ldap3 calls (the DC's own cost of the round).
  freshness    the sync DAG every minute on a real scheduler (PostgreSQL, tests/fixtures/airflow_services.py),
               tenant changes at random times, a reader polling the domain: change-to-visible p50 and p95.
               With a sync part (passwords off), over the domain that sync loaded, after its other parts;
               alone, over a fresh DC whose first scheduled run loads the whole tenant.

Writes benchmarks/results/sync-<size>.json, sync.md (every size measured) and sync-stages.png. The machine
is shared: figures are indicative; ratios compare measurements of one run. Needs root (Samba).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

from benchmarks import sync_report  # noqa: E402

TENANT_DOMAIN = "contoso.example"  # not the DC's realm (its implied UPNs would collide with the tenant's)
STAGE_MARK = "BENCH-STAGE "
PARTS = ("ceiling", "dry-run", "full", "no-change", "incremental", "incremental-bare", "freshness")
SYNC_DAG = "tenant_to_domain_sync"


# ------------------------------------------------------------------ one stage in a process of its own
def child_stage(name: str, run_id: str, params: dict[str, Any]) -> None:
    """Run one stage (in the child process) and print its figures as the last line."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # Before the clock starts, what a task process has loaded when its task begins: Airflow's Task SDK and the
    # stage's module (the DAG file imports domain_sync.tasks). What the stage imports as it runs (the Graph
    # hook, Great Expectations) is the task's own time, in Airflow too.
    import airflow.sdk  # noqa: F401

    from domain_sync.pipeline import run_stage, stage_function

    stage_function(name)
    profile_dir = os.environ.get("BENCH_SYNC_PROFILE_DIR")
    profiler = None
    if profile_dir:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_stage(name, run_id, params)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler is not None:
        profiler.stop()
        write_profile(profiler, Path(profile_dir) / f"{run_id}-{name}")
    peak_kib = peak_rss_kib()
    print(STAGE_MARK + json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": peak_kib / 1024,
                                   "writes": int(result.get("total_writes") or 0) if name == "apply" else 0,
                                   "result": result}, default=str), flush=True)


def write_profile(profiler, stem: Path) -> None:
    """A stage's pyinstrument profile: the call tree as text (<stem>.txt, calls under 1% of the stage folded
    away; paths in the checkout relative to it) and the session (<stem>.pyisession: `pyinstrument --load
    <file>` renders it again, as HTML too)."""
    text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
    stem.parent.joinpath(f"{stem.name}.txt").write_text(text.replace(f"{ROOT}{os.sep}", ""), encoding="utf-8")
    profiler.last_session.save(str(stem.parent / f"{stem.name}.pyisession"))


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB: VmHWM, the high-water mark of its own memory since exec. Not
    getrusage's ru_maxrss: on Linux that starts from the parent's RSS when the process was forked, so every
    stage would show at least the benchmark's own (the parent holds the tenant: 836 MiB at large)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_stages(run_id: str, params: dict[str, Any] | None = None,
               stages: list[str] = sync_report.STAGES) -> tuple[dict[str, dict], dict[str, dict]]:
    """Each stage in a fresh process; ({stage: figures}, {stage: its result})."""
    figures, results = {}, {}
    try:
        for name in stages:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-stage", name,
                                   "--run-id", run_id, "--params", json.dumps(params or {})],
                                  capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL, check=False)
            lines = [line for line in proc.stdout.splitlines() if line.startswith(STAGE_MARK)]
            if proc.returncode != 0 or not lines:
                raise SystemExit(f"stage {name} of {run_id} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
            out = json.loads(lines[-1][len(STAGE_MARK):])
            results[name] = out.pop("result")
            figures[name] = {"seconds": round(out["seconds"], 3), "cpu_seconds": round(out["cpu_seconds"], 3),
                             "process_seconds": round(time.perf_counter() - started, 3),
                             "peak_rss_mib": round(out["peak_rss_mib"], 1), "writes": out["writes"]}
            print(f"    {run_id} {name:15} {out['seconds']:8.1f} s  (cpu {out['cpu_seconds']:.1f} s, "
                  f"process {figures[name]['process_seconds']:.1f} s,"
                  f" peak {out['peak_rss_mib']:.0f} MiB)", flush=True)
    finally:
        from domain_sync.config import Settings
        from domain_sync.state import release_run_lock

        release_run_lock(Settings.from_env(), run_id)
    return figures, results


# ------------------------------------------------------------------ a fresh domain, emulator and data folder
class Measurement:
    """A fresh Samba DC, a fresh emulator serving the tenant and a fresh data folder; os.environ points the
    stages (and Airflow) at them while it is open."""

    def __init__(self, workdir: Path, name: str, tenant_file: Path, passwords: bool, env: dict[str, str]):
        self.dir = workdir / name
        self.tenant_file = tenant_file
        self.passwords = passwords
        self.env = env
        self.domain = None
        self.emulator = None
        self.gone: set[str] = set()  # users the recipes applied here deleted from the tenant

    def apply_recipe(self, recipe: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Make the recipe's changes in the tenant, keeping the ids of the users it deletes."""
        apply_recipe(self.emulator.admin, recipe)
        self.gone |= {object_id for kind, object_id, _ in recipe if kind == "delete_user"}

    def __enter__(self) -> Measurement:
        from emulator.testing import start_emulator
        from tests.fixtures.local_domain import LocalDomain, pick_test_address

        self.dir.mkdir(parents=True)
        address = pick_test_address()
        print(f"  provisioning a DC on {address} for {self.dir.name} ...", flush=True)
        self.domain = LocalDomain(dir=self.dir / "domain", address=address)
        self.domain.provision()
        self.domain.start()
        self.emulator = start_emulator(self.tenant_file, self.dir / "emulator")
        os.environ.update(self.env)
        os.environ.update({
            "DOMAIN_SYNC_DATA_DIR": str(self.dir / "data"),
            "DOMAIN_SYNC_INITIAL_PASSWORD": "random" if self.passwords else "none",
            "AIRFLOW_CONN_LDAP_DOMAIN": self.domain.connection_json(),
            "AIRFLOW_CONN_MSGRAPH_TENANT": self.emulator.connection_json(),
        })
        return self

    def __exit__(self, *exc: object) -> None:
        if self.emulator is not None:
            self.emulator.stop()
        if self.domain is not None:
            with contextlib.suppress(Exception):
                self.domain.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def settings(self):
        from domain_sync.config import Settings

        return Settings.from_env()

    def plan(self, run_id: str) -> dict[str, Any]:
        from domain_sync.runs import RunFolder

        return json.loads(RunFolder(self.settings().runs_dir, run_id).plan.read_text(encoding="utf-8"))


def created_objects(plan: dict[str, Any]) -> int:
    """Users and groups a plan creates."""
    return sum(1 for c in plan["changes"] if c["op"] == "create" and c.get("kind") in ("user", "group"))


# ------------------------------------------------------------------ the ceiling: bare ldap3 writes
def bare_connection(connection: dict[str, Any]):
    import ldap3

    extra = connection["extra"]
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=extra["ca_file"], valid_names=[extra["tls_server_name"]],
                    version=ssl.PROTOCOL_TLS_CLIENT)
    server = ldap3.Server(connection["host"], port=connection["port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, connection["login"], connection["password"], auto_bind=ldap3.AUTO_BIND_NO_TLS)


def bare_password() -> bytes:
    """A random initial password meeting the default policy, as unicodePwd takes it."""
    import secrets

    from domain_sync.passwords.policy import unicode_pwd

    return unicode_pwd("Aa1!" + secrets.token_urlsafe(12))


def bare_phases(plan: dict[str, Any], anchor_attribute: str, passwords: bool) -> list[list[tuple]]:
    """The plan's writes as plain ldap3 calls ((method, args, the plan's operation)), in its phases (runs of one
    operation)."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

    from domain_sync.dn import first_rdn, parent_dn, same_dn
    from domain_sync.domain import ANCHOR_BINARY_ATTRIBUTES

    phases: list[list[tuple]] = []
    last_op = None
    for change in plan["changes"]:
        op, values = change["op"], dict(change.get("values", {}))
        if op in ("create_container", "create"):
            if anchor_attribute in values and anchor_attribute.lower() in ANCHOR_BINARY_ATTRIBUTES:
                values[anchor_attribute] = [bytes.fromhex(v) for v in values[anchor_attribute]]
            if passwords and op == "create" and change.get("kind") == "user":
                values["unicodePwd"] = [bare_password()]
            call = ("add", (change["dn"], values.pop("objectClass"), values))
        elif op in ("modify", "disable"):
            call = ("modify", (change["dn"], {k: [(MODIFY_REPLACE, v)] for k, v in values.items()}))
        elif op in ("add_members", "remove_members"):
            verb = MODIFY_ADD if op == "add_members" else MODIFY_DELETE
            call = ("modify", (change["dn"], {"member": [(verb, change["members"])]}))
        elif op == "rename":
            new_dn = change["new_dn"]
            moved = not same_dn(parent_dn(new_dn), parent_dn(change["dn"]))
            call = ("modify_dn", (change["dn"], first_rdn(new_dn), True, parent_dn(new_dn) if moved else None))
        elif op == "delete":
            call = ("delete", (change["dn"],))
        else:
            raise SystemExit(f"no bare write for {op}")
        if op != last_op:
            phases.append([])
            last_op = op
        phases[-1].append((*call, op))
    return phases


def timed_bare(connection: dict[str, Any], phases: list[list[tuple]], connections: int,
               per_phase: list[dict[str, Any]] | None = None) -> tuple[float, float]:
    """Seconds to write every phase (in order; one thread per connection within a phase), and the CPU seconds
    this process spent on it (the client's share; the DC's is its own). `per_phase` gets each phase's
    operation, writes and seconds."""
    conns = [bare_connection(connection) for _ in range(connections)]
    failures: list = []

    def drain(conn, items, lock) -> None:
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            method, args, _ = item
            if not getattr(conn, method)(*args):
                failures.append((method, args[0], conn.result))

    started, cpu_started = time.perf_counter(), time.process_time()
    for phase in phases:
        phase_started = time.perf_counter()
        items, lock = iter(phase), threading.Lock()
        threads = [threading.Thread(target=drain, args=(c, items, lock)) for c in conns[:len(phase)]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if per_phase is not None:
            per_phase.append({"op": phase[0][2], "writes": len(phase),
                              "seconds": round(time.perf_counter() - phase_started, 3)})
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    for c in conns:
        c.unbind()
    if failures:
        raise SystemExit(f"bare writes failed ({len(failures)}): {failures[:3]}")
    return seconds, cpu_seconds


def measure_ceiling(workdir: Path, tenant_file: Path, env: dict[str, str], passwords: bool) -> dict[str, Any]:
    pw = "on" if passwords else "off"
    print(f"ceiling, passwords {pw}", flush=True)
    with Measurement(workdir, f"ceiling-{pw}", tenant_file, passwords, env) as m:
        run_id = "manual__bench-dry-run"
        run_stages(run_id, {"dry_run": True}, stages=sync_report.STAGES[:5])
        plan = m.plan(run_id)
        settings = m.settings()
        phases = bare_phases(plan, settings.anchor_attribute, passwords)
        per_phase: list[dict[str, Any]] = []
        seconds, cpu_seconds = timed_bare(m.domain.connection(), phases, settings.apply_connections, per_phase)
        writes = sum(len(p) for p in phases)
        out = sync_report.ceiling_figures(created_objects(plan), writes, seconds, settings.apply_connections)
        out["cpu_seconds"] = round(cpu_seconds, 3)
        out["phases"] = per_phase  # beside the full sync's apply_phases: where apply and bare writes part
    print(f"  ceiling, passwords {pw}: {out}", flush=True)
    return out


def measure_dry_run(workdir: Path, tenant_file: Path, env: dict[str, str]) -> dict[str, Any]:
    print("first sync up to its plan (dry run)", flush=True)
    with Measurement(workdir, "dry-run", tenant_file, False, env) as m:
        figures, results = run_stages("manual__bench-first-plan", {"dry_run": True}, stages=sync_report.STAGES[:5])
        out = sync_report.run_figures(figures)
        out.update({"planned_objects": created_objects(m.plan("manual__bench-first-plan")),
                    "planned": results["plan"].get("counts")})
    print(f"  dry run: {out['seconds']:.1f} s, peak {out['peak_rss_mib']:.0f} MiB", flush=True)
    return out


# ------------------------------------------------------------------ full sync, no-change, incremental
def plan_modes() -> list[str]:
    """The plan modes the settings offer: ["full", "incremental"] once DOMAIN_SYNC_PLAN_MODE exists."""
    from dataclasses import fields

    from domain_sync.config import Settings

    return ["full", "incremental"] if "plan_mode" in {f.name for f in fields(Settings)} else ["full"]


def full_run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The full sync's stage figures, and apply's phases (operation, changes, seconds)."""
    figures, results = run_stages("manual__bench-full")
    assert results["apply"]["statuses"] == {"applied": results["apply"]["planned"]}, results["apply"]["statuses"]
    return figures, results["apply"].get("phases") or []


def wait_for(go_file: Path) -> bool:
    """Wait until go_file exists and take it; False when it holds "stop"."""
    print(f"  paused: waiting for {go_file} (\"stop\" in it ends the benchmark)", flush=True)
    while not go_file.exists():
        time.sleep(5)
    word = go_file.read_text(encoding="utf-8").strip()
    go_file.unlink()
    return word != "stop"


def measure_sync(workdir: Path, tenant_file: Path, env: dict[str, str], passwords: bool, parts: set[str],
                 recipe_seed: int, changes: int, save, pause: Path | None = None,
                 freshness: tuple[int, float] | None = None) -> None:
    """The full sync; then (passwords off) the no-change runs and the incremental run in the same domain, and
    with `freshness` (samples, minutes) the scheduled runs' freshness over that domain, its state committed.
    `save(update)` keeps each figure as soon as it is measured. With `pause`, the benchmark waits for that
    file after the full sync and after each round of the other parts, so that the stages of another commit
    (each stage runs in a fresh process importing the tree's code) are measured on the same synced domain."""
    pw = "on" if passwords else "off"
    print(f"full sync, passwords {pw}", flush=True)
    out: dict[str, Any] = {}
    with Measurement(workdir, f"sync-{pw}", tenant_file, passwords, env) as m:
        if "full" in parts or pw == "on":  # the other parts need the synced domain, not the full sync's figures
            figures, apply_phases = full_run()
            out["full"] = sync_report.run_figures(figures, created_objects(m.plan("manual__bench-full")))
            out["full"]["apply_phases"] = apply_phases
            save({"full_sync": {pw: out["full"]}})
            print(f"  full sync, passwords {pw}: {out['full']['seconds']:.1f} s, "
                  f"{out['full']['objects_per_s']} objects/s", flush=True)
        else:
            run_stages("manual__bench-full")
        round_ = 0
        while pause is None or (pw == "off" and wait_for(pause)):
            measure_delta_parts(m, tenant_file, parts, recipe_seed, changes, save, round_)
            round_ += 1
            if pause is None:
                break
        if freshness is not None and pw == "off":
            samples, minutes = freshness
            save({"freshness": scheduled_freshness(m, samples, minutes, recipe_seed, sync_report.SYNCED_DOMAIN)})


def measure_delta_parts(m: Measurement, tenant_file: Path, parts: set[str], recipe_seed: int, changes: int, save,
                        round_: int) -> None:
    """The no-change runs (each plan mode) and the incremental run of `changes` in the synced domain."""
    out: dict[str, Any] = {}
    suffix = f"-r{round_}" if round_ else ""
    modes = plan_modes()
    if "no-change" in parts:
        out["no_change"] = {}
        for mode in modes:
            if len(modes) > 1:
                os.environ["DOMAIN_SYNC_PLAN_MODE"] = mode
            figures, _ = run_stages(f"manual__bench-no-change-{mode}{suffix}")
            out["no_change"][mode] = sync_report.run_figures(figures)
            print(f"  no-change run, {mode} plan: {out['no_change'][mode]['seconds']:.1f} s, "
                  f"{out['no_change'][mode]['writes']} writes", flush=True)
        if modes == ["full"]:
            out["no_change"]["incremental_note"] = "full only (the settings have no plan mode)"
        save({"no_change": out["no_change"]})
    if "incremental" in parts:
        if len(modes) > 1:
            os.environ["DOMAIN_SYNC_PLAN_MODE"] = "incremental"
        tenant = json.loads(tenant_file.read_text(encoding="utf-8"))
        recipe = change_recipe(tenant, changes, recipe_seed, round_)
        m.apply_recipe(recipe)
        figures, results = run_stages(f"manual__bench-incremental{suffix}")
        out["incremental"] = sync_report.run_figures(figures)
        out["incremental"].update({"changes": len(recipe), "recipe": recipe_counts(recipe, recipe_seed),
                                   "round": round_,
                                   "plan_mode": modes[-1], "planned": results["plan"].get("counts")})
        print(f"  incremental run of {len(recipe)} changes: {out['incremental']['seconds']:.1f} s, "
              f"{out['incremental']['writes']} writes", flush=True)
        save({"incremental": out["incremental"]})
    if "incremental-bare" in parts:
        save({"incremental_bare": measure_incremental_bare(m, tenant_file, recipe_seed, changes, round_)})
    os.environ.pop("DOMAIN_SYNC_PLAN_MODE", None)


def measure_incremental_bare(m: Measurement, tenant_file: Path, recipe_seed: int, changes: int,
                             round_: int) -> dict[str, Any]:
    """The DC's own cost of an incremental round: the same recipe of changes (drawn from the last users), its
    plan made by a dry run, then exactly the plan's writes as bare ldap3 calls in its phases over the same
    connections (timed); a sync run after them finds the domain done and commits the round."""
    suffix = f"-r{round_}" if round_ else ""
    tenant = json.loads(tenant_file.read_text(encoding="utf-8"))
    recipe = change_recipe(tenant, changes, recipe_seed, round_, from_end=True)
    m.apply_recipe(recipe)
    run_id = f"manual__bench-incremental-bare-plan{suffix}"
    figures, _ = run_stages(run_id, {"dry_run": True}, stages=sync_report.STAGES[:5])
    plan = m.plan(run_id)
    settings = m.settings()
    phases = bare_phases(plan, settings.anchor_attribute, False)
    per_phase: list[dict[str, Any]] = []
    seconds, cpu_seconds = timed_bare(m.domain.connection(), phases, settings.apply_connections, per_phase)
    _, results = run_stages(f"manual__bench-incremental-bare-commit{suffix}")
    out = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3), "writes": sum(len(p) for p in phases),
           "changes": len(recipe), "round": round_, "planned": plan.get("counts"), "phases": per_phase,
           "stages_before_apply_s": round(sum(f["seconds"] for f in figures.values()), 3),
           "writes_left_for_the_sync": results["apply"].get("planned")}
    print(f"  bare writes of an incremental plan of {len(recipe)} changes: {out['seconds']:.1f} s, "
          f"{out['writes']} writes (the sync's run after them planned {out['writes_left_for_the_sync']})", flush=True)
    return out


# The recipe's shares: attribute changes, new users, deletes, renames, membership changes.
RECIPE_SHARES = {"attributes": 0.5, "new_user": 0.2, "delete": 0.1, "rename": 0.1, "membership": 0.1}


def change_recipe(tenant: dict[str, Any], changes: int, seed: int,
                  round_: int = 0, from_end: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """`changes` tenant changes as (kind, object id, body): the same recipe at every size (the same counts of
    each kind, drawn by the same seed from the first 5,000 users and the team groups among the first 1,000
    groups, so that the changes do not grow with the tenant). A later round (a paused benchmark measuring
    again in the same domain) draws from the next 5,000 users and names its newcomers apart; `from_end`
    (the bare writes' rounds) counts the 5,000s from the last user instead (a tenant of fewer than 10,000
    users is cut in halves instead of 5,000s)."""
    rng = random.Random(f"change recipe {seed}")  # not the generator's stream (its ids would come again)
    total = len(tenant["users"])
    chunk = min(5000, total // 2)  # a small tenant's halves: the rounds from the start and from the end apart
    first = total - chunk * (round_ + 1) if from_end else chunk * round_
    users = tenant["users"][max(first, 0):first + chunk]
    groups = tenant["groups"][12:1000] or tenant["groups"]
    counts = {kind: int(changes * share) for kind, share in RECIPE_SHARES.items()}
    counts["attributes"] += changes - sum(counts.values())
    picked = rng.sample(range(len(users)), min(len(users), counts["attributes"] + counts["delete"] + counts["rename"]))
    recipe: list[tuple[str, str, dict[str, Any]]] = []
    for n, index in enumerate(picked):
        user = users[index]
        if n < counts["attributes"]:
            recipe.append(("update_user", user["id"], {"jobTitle": f"Benchmark Title {n}",
                                                       "department": rng.choice(["Finance", "Sales", "Research"]),
                                                       "city": rng.choice(["Lisbon", "Oslo", "Kyoto"])}))
        elif n < counts["attributes"] + counts["rename"]:
            recipe.append(("update_user", user["id"], {"displayName": f"{user['displayName']} Renamed{n}",
                                                       "surname": f"{user.get('surname') or 'X'} Renamed{n}"}))
        else:
            recipe.append(("delete_user", user["id"], {}))
    for n in range(counts["new_user"]):
        nick = f"bench.new{n}" + (f".e{round_}" if from_end else f".r{round_}" if round_ else "")
        recipe.append(("create_user", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{nick}.{seed}.{TENANT_DOMAIN}")), {
            "displayName": f"Bench Newcomer{n}", "givenName": "Bench", "surname": f"Newcomer{n}",
            "mailNickname": nick, "userPrincipalName": f"{nick}@{TENANT_DOMAIN}", "mail": f"{nick}@{TENANT_DOMAIN}",
            "accountEnabled": True, "department": "Research"}))
    changed = set(picked)
    kept = [users[i] for i in range(len(users)) if i not in changed]
    kept_ids = {u["id"] for u in kept}
    # Each membership change changes something: a removal takes a member the group holds, an addition a user
    # it does not hold, and no (group, user) pair comes twice (the second would be refused, and the recipe
    # would count a change the tenant never saw).
    paired: set[tuple[str, str]] = set()
    for n in range(counts["membership"]):
        for attempt in range(2000):  # a removal needs a group holding a user the recipe does not change
            group = groups[rng.randrange(len(groups))]
            holds = list(dict.fromkeys(m["id"] for m in group.get("members", [])))
            if n % 2 and attempt < 1000:
                kind, options = "remove_member", [i for i in holds if i in kept_ids and (group["id"], i) not in paired]
            else:  # an addition (or, after 1,000 groups without a removable member, one instead of a removal)
                held = set(holds)
                kind, options = "add_member", [u["id"] for u in kept
                                               if u["id"] not in held and (group["id"], u["id"]) not in paired]
            if options:
                break
        else:
            raise ValueError("the recipe found no membership left to change")
        member = rng.choice(options)
        recipe.append((kind, group["id"], {"member": member}))
        paired.add((group["id"], member))
    return recipe


def recipe_counts(recipe: list[tuple[str, str, dict[str, Any]]], seed: int) -> dict[str, Any]:
    counts: dict[str, Any] = {"seed": seed}
    for kind, _, body in recipe:
        key = {"update_user": "rename" if "displayName" in body else "attributes"}.get(kind, kind)
        counts[key] = counts.get(key, 0) + 1
    return counts


def apply_recipe(admin, recipe: list[tuple[str, str, dict[str, Any]]]) -> None:
    from emulator.admin import AdminError

    for kind, object_id, body in recipe:
        try:
            if kind == "update_user":
                admin.update_user(object_id, body)
            elif kind == "delete_user":
                admin.delete_user(object_id)
            elif kind == "create_user":
                admin.create_user({"id": object_id, **body})
            elif kind == "add_member":
                admin.add_member(object_id, body["member"], "#microsoft.graph.user")
            elif kind == "remove_member":
                admin.remove_member(object_id, body["member"])
        except AdminError as exc:
            if kind not in ("add_member", "remove_member"):  # a member already there, or removed twice
                raise
            print(f"    {kind} {object_id}: {exc}", flush=True)


# ------------------------------------------------------------------ freshness on a real scheduler
def measure_freshness(workdir: Path, tenant_file: Path, env: dict[str, str], samples: int, minutes: float,
                      seed: int) -> dict[str, Any]:
    """Freshness on a fresh DC: the scheduler's first run loads the whole tenant, then the samples."""
    with Measurement(workdir, "freshness", tenant_file, False, env) as m:
        return scheduled_freshness(m, samples, minutes, seed, sync_report.FRESH_DOMAIN)


def scheduled_freshness(m: Measurement, samples: int, minutes: float, seed: int, domain: str) -> dict[str, Any]:
    """The sync DAG every minute on a real scheduler over `m`'s domain, tenant and data folder; once a run has
    succeeded, `samples` changes at random times over `minutes`, each timed until the domain shows it."""
    from tests.fixtures.airflow_services import AirflowServices
    from tests.fixtures.local_domain import (
        POSTGRES_HOST,
        POSTGRES_PORT,
        POSTGRES_USER,
        ensure_postgres_running,
        postgres_admin,
    )

    print(f"freshness: {samples} changes over {minutes:g} minutes, the sync DAG every minute, on {domain}", flush=True)
    rng = random.Random(seed)
    tenant = json.loads(m.tenant_file.read_text(encoding="utf-8"))
    ensure_postgres_running()
    database = f"bench_{uuid.uuid4().hex[:12]}"
    postgres_admin(f'CREATE DATABASE "{database}"')
    url = f"postgresql+psycopg2://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"
    try:
        services = AirflowServices(m.dir / "airflow-home", url)
        try:
            services.start(DOMAIN_SYNC_SYNC_SCHEDULE="* * * * *", NO_PROXY="127.0.0.1,localhost",
                           no_proxy="127.0.0.1,localhost")
            services.wait_for_dag(SYNC_DAG)
            services.cli("dags", "unpause", SYNC_DAG)
            began = time.monotonic()
            services.wait_for(lambda: [r for r in services.runs(SYNC_DAG) if r["state"] == "success"],
                              3600, "the first scheduled sync run to succeed", interval=5)
            first = time.monotonic() - began
            print(f"  first run done after {first:.0f} s; measuring", flush=True)
            return {**freshness_samples(m, rng, tenant, samples, minutes), "domain": domain,
                    "first_run_s": round(first, 1)}
        finally:
            services.stop()
    finally:
        postgres_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def freshness_users(m: Measurement, rng: random.Random, tenant: dict[str, Any], samples: int) -> list[dict]:
    """`samples` users drawn among those still in the tenant: not deleted by a recipe applied in `m`."""
    return rng.sample([u for u in tenant["users"] if u["id"] not in m.gone], samples)


def freshness_samples(m: Measurement, rng: random.Random, tenant: dict[str, Any], samples: int,
                      minutes: float) -> dict[str, Any]:
    """Change a user's department to a new value at random times; poll the domain for each value."""
    users = freshness_users(m, rng, tenant, samples)
    due = sorted(rng.uniform(0, minutes * 60) for _ in range(samples))
    start = time.monotonic()
    pending: dict[str, float] = {}
    found: list[dict[str, Any]] = []
    settings = m.settings()
    conn = m.domain.ldap_connection()
    base = f"{settings.container},{m.domain.base_dn}"
    deadline = start + minutes * 60 + 900
    try:
        while (due or pending) and time.monotonic() < deadline:
            now = time.monotonic()
            while due and now - start >= due[0]:
                due.pop(0)
                value = f"Fresh{len(found) + len(pending)}-{uuid.uuid4().hex[:6]}"
                m.emulator.admin.update_user(users[len(found) + len(pending)]["id"], {"department": value})
                pending[value] = time.monotonic()
            if pending:
                query = "(|" + "".join(f"(department={v})" for v in pending) + ")"
                conn.search(base, query, attributes=["department"])
                for entry in conn.response or []:
                    if entry.get("type") != "searchResEntry":
                        continue
                    value = entry["attributes"]["department"]
                    value = value[0] if isinstance(value, list) else value
                    if value in pending:
                        seconds = time.monotonic() - pending.pop(value)
                        found.append({"value": value, "seconds": round(seconds, 1)})
                        print(f"    {value} visible after {seconds:.1f} s", flush=True)
            time.sleep(1)
    finally:
        conn.unbind()
    return {"samples": found, "not_visible": sorted(pending), "schedule": "* * * * *", "minutes": minutes}


# ------------------------------------------------------------------ results
def write_results(out_dir: Path, size: str, update: dict[str, Any]) -> dict[str, Any]:
    """Merge `update` into the size's JSON, derive the figures and targets, rewrite sync.md and the plot."""
    results = sync_report.read_results(out_dir)
    result = results.get(size) or {"size": size}
    stamp = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git_commit()}
    for key, value in update.items():
        if key in ("ceiling", "full_sync"):
            value = {pw: {**figures, **stamp} for pw, figures in value.items()}
        elif key in ("dry_run", "no_change", "incremental", "incremental_bare", "freshness"):
            value = {**value, **stamp}
        if isinstance(value, dict) and isinstance(result.get(key), dict) and key in ("ceiling", "full_sync"):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    results[size] = result
    sync_report.derive(result, results)
    sync_report.write_json(out_dir / f"sync-{size}.json", result)
    for other in results:  # growth_ratio reads both sizes
        if other != size:
            sync_report.derive(results[other], results)
            sync_report.write_json(out_dir / f"sync-{other}.json", results[other])
    (out_dir / "sync.md").write_text(sync_report.markdown(results), encoding="utf-8")
    sync_report.plot(results, out_dir / "sync-stages.png")
    return result


def git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(sync_report.SIZES), default="small")
    parser.add_argument("--parts", default="ceiling,full,no-change,incremental,incremental-bare,freshness",
                        help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--passwords", default="off,on", help="off, on, or both (off,on): for ceiling and full")
    parser.add_argument("--changes", type=int, help="changes of the incremental run (default: the size's)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--freshness-samples", type=int, default=12)
    parser.add_argument("--freshness-minutes", type=float, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--workdir", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--pause", type=Path,
                        help="after the full sync (passwords off), wait for this file before the no-change and "
                             "incremental parts, and again after them (\"stop\" in it ends): measures another "
                             "commit's stages on the same synced domain")
    parser.add_argument("--profile", type=Path,
                        help="run each stage under pyinstrument (a statistical profiler, a sample every 1 ms) and "
                             "keep its profile here (<run id>-<stage>.txt, the call tree; .pyisession, for "
                             "pyinstrument --load); its hook on every call slows call-heavy stages (the plan about "
                             "3x): read a profile's shares, and the figures of such a run are not the benchmark's")
    parser.add_argument("--child-stage", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; expected some of {', '.join(PARTS)}")
    args.passwords = [p.strip() for p in args.passwords.split(",") if p.strip()]
    if set(args.passwords) - set(sync_report.PASSWORDS):
        parser.error("--passwords takes off, on or off,on")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_stage:
        child_stage(args.child_stage, args.run_id, json.loads(args.params))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("the benchmark needs root: Samba's AD DC runs as root")
    shape = sync_report.SIZES[args.size]
    changes = args.changes or shape["changes"]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sync-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(workdir / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)]),
        "TQDM_DISABLE": "1",
        "GX_ANALYTICS_ENABLED": "False",
        # The benchmark's tenants are clean: every write must go through.
        "DOMAIN_SYNC_MAX_APPLY_FAILURE_SHARE": "0",
    }
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        env["BENCH_SYNC_PROFILE_DIR"] = str(args.profile.resolve())
    os.environ.update(env)
    tenant_file = workdir / "tenant.json"
    print(f"{args.size}: {shape['users']:,} users, {shape['groups']:,} groups, {shape['memberships']:,} member values;"
          f" parts {', '.join(args.parts)}", flush=True)
    subprocess.run([sys.executable, "-m", "emulator", "generate", "--users", str(shape["users"]),
                    "--groups", str(shape["groups"]), "--memberships", str(shape["memberships"]),
                    "--seed", str(args.seed), "--domain", TENANT_DOMAIN, "--out", str(tenant_file)],
                   cwd=ROOT, check=True)
    tenant = json.loads(tenant_file.read_text(encoding="utf-8"))
    base = {"size": args.size, "commit": git_commit(), "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, shared with other work while measured (figures indicative)",
            "tenant": {"users": len(tenant["users"]), "groups": len(tenant["groups"]),
                       "memberships": sum(len(g.get("members", [])) for g in tenant["groups"]), "seed": args.seed},
            "plan_modes": plan_modes()}
    from domain_sync.config import Settings

    base["apply_connections"] = Settings.from_env().apply_connections
    result = write_results(args.out, args.size, base)
    # freshness is measured on the synced domain when a sync runs with passwords off, else on a fresh one
    freshness = (args.freshness_samples, args.freshness_minutes) if "freshness" in args.parts else None
    freshness_done = False
    try:
        if "dry-run" in args.parts:
            result = write_results(args.out, args.size, {"dry_run": measure_dry_run(workdir, tenant_file, env)})
        for pw in args.passwords:
            passwords = pw == "on"
            if "ceiling" in args.parts:
                ceiling = measure_ceiling(workdir, tenant_file, env, passwords)
                result = write_results(args.out, args.size, {"ceiling": {pw: ceiling}})
            needs_sync = {"full", "no-change", "incremental", "incremental-bare"} & set(args.parts)
            if needs_sync and (pw == "off" or "full" in args.parts):
                measure_sync(workdir, tenant_file, env, passwords, set(args.parts) if pw == "off" else set(),
                             args.seed, changes, lambda update: write_results(args.out, args.size, update),
                             args.pause, freshness)
                result = sync_report.read_results(args.out)[args.size]
                freshness_done = freshness_done or (freshness is not None and not passwords)
        if freshness is not None and not freshness_done:
            figures = measure_freshness(workdir, tenant_file, env, args.freshness_samples, args.freshness_minutes,
                                          args.seed)
            result = write_results(args.out, args.size, {"freshness": figures})
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print((args.out / "sync.md").read_text(encoding="utf-8"))
    print(json.dumps({k: result.get(k) for k in ("ceiling_ratio", "growth_ratio", "no_change_writes", "peak_rss_mib",
                                                 "freshness_p50_s", "freshness_p95_s")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
