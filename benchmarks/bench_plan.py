"""Benchmark of the plan stage, full reconcile against the incremental plan (prints figures; not a test).

    .venv/bin/python benchmarks/bench_plan.py --users 20000 --groups 2000 --changes 200

A generated tenant (python -m emulator generate), served by the emulator, synced in full into a freshly
provisioned Samba DC on a spare loopback address through the real stages. Then a run with no tenant change
(twice: the first reads what the full sync wrote), and a run after --changes seeded tenant changes
(emulator.hostile.random_changes): in each, after extract, transform and validate, the plan stage runs as a
full reconcile (DOMAIN_SYNC_PLAN_MODE=full) and then incremental, each timed (wall and client CPU), and their
change lists are compared; apply and commit follow.
--profile keeps a pyinstrument profile of each plan in the work folder (bench_sync.write_profile: the call
tree as text, and the session). Needs root (Samba).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT), str(ROOT / "benchmarks")]

from bench_load import TENANT_DOMAIN, address_free, fresh_domain  # noqa: E402

BEFORE_PLAN = ["extract_users", "extract_groups", "transform", "validate"]
AFTER_PLAN = ["apply", "commit"]


def timed(stage: str, run_id: str, profile: Path | None = None) -> tuple[dict, float, float]:
    """Run a stage, timed; with `profile` (a path without suffix), under pyinstrument, kept there."""
    from domain_sync.pipeline import run_stage

    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    started, cpu = time.perf_counter(), time.process_time()
    result = run_stage(stage, run_id, {})
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler:
        from benchmarks.bench_sync import write_profile

        profiler.stop()
        write_profile(profiler, profile)
    return result, wall, cpu


def run_both(run_id: str, workdir: Path, profile: bool) -> dict:
    """A run whose plan is made full, then incremental; the figures of both."""
    from domain_sync.runs import RunFolder, read_json

    figures: dict = {}
    for stage in BEFORE_PLAN:
        _, wall, _ = timed(stage, run_id)
        figures[f"{stage}_s"] = round(wall, 2)
    plans = {}
    for mode in ("full", "incremental"):
        os.environ["DOMAIN_SYNC_PLAN_MODE"] = mode
        result, wall, cpu = timed("plan", run_id, workdir / f"{run_id}-{mode}" if profile else None)
        plan = read_json(RunFolder(Path(os.environ["DOMAIN_SYNC_DATA_DIR"]) / "runs", run_id).plan)
        plans[mode] = plan["changes"]
        figures[f"plan_{mode}"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "changes": result["changes"],
                                   "plan_mode": result.get("plan_mode")}
    del os.environ["DOMAIN_SYNC_PLAN_MODE"]
    figures["same_changes"] = plans["full"] == plans["incremental"]
    for stage in AFTER_PLAN:
        result, wall, _ = timed(stage, run_id)
        figures[f"{stage}_s"] = round(wall, 2)
        if stage == "apply":
            figures["writes"] = result.get("total_writes")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--address", default="127.0.0.11", help="a spare loopback address for the DC")
    parser.add_argument("--profile", action="store_true", help="a pyinstrument profile of each plan in the work folder")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary folder, removed)")
    args = parser.parse_args()
    if not address_free(args.address):
        raise SystemExit(f"{args.address} has LDAP ports in use: pass a spare loopback address with --address")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-plan-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"AIRFLOW_HOME": str(workdir / "airflow"), "DOMAIN_SYNC_DATA_DIR": str(workdir / "data"),
                       "DOMAIN_SYNC_INITIAL_PASSWORD": "none", "DOMAIN_SYNC_MAX_APPLY_FAILURE_SHARE": "0.5",
                       "TQDM_DISABLE": "1", "GX_ANALYTICS_ENABLED": "False"})
    import logging

    logging.basicConfig(level=logging.WARNING)
    from emulator.hostile import random_changes
    from emulator.testing import start_emulator

    domain = workdir / "dc"
    emulator = None
    figures: dict = {"users": args.users, "groups": args.groups, "changes": args.changes}
    try:
        os.environ["AIRFLOW_CONN_LDAP_DOMAIN"] = json.dumps(fresh_domain(domain, args.address))
        tenant = workdir / "tenant.json"
        subprocess.run([sys.executable, "-m", "emulator", "generate", "--users", str(args.users), "--groups",
                        str(args.groups), "--seed", str(args.seed), "--domain", TENANT_DOMAIN, "--out", str(tenant)],
                       cwd=ROOT, check=True)
        emulator = start_emulator(tenant, workdir / "emulator")
        os.environ["AIRFLOW_CONN_MSGRAPH_TENANT"] = emulator.connection_json()
        started = time.perf_counter()
        for stage in [*BEFORE_PLAN, "plan", *AFTER_PLAN]:
            timed(stage, "full-sync")
        figures["full_sync_s"] = round(time.perf_counter() - started, 1)
        print(f"full sync: {figures['full_sync_s']} s", flush=True)
        # The first run after a sync reads what that sync wrote (uSNChanged above the USN its plan read).
        figures["no_change_after_sync"] = run_both("no-change-1", workdir, args.profile)
        print(f"no change, after the sync: {figures['no_change_after_sync']}", flush=True)
        figures["no_change"] = run_both("no-change-2", workdir, args.profile)
        print(f"no change: {figures['no_change']}", flush=True)
        random_changes(emulator.admin, args.changes, args.seed)
        figures["after_changes"] = run_both("after-changes", workdir, args.profile)
        print(f"after {args.changes} changes: {figures['after_changes']}", flush=True)
    finally:
        if emulator is not None:
            emulator.stop()
        subprocess.run(["bash", str(ROOT / "scripts" / "local-domain"), "stop", str(domain)], capture_output=True,
                       check=False)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
