"""Benchmark of the transform and validate stages on a generated tenant (prints figures; not a test).

    .venv/bin/python benchmarks/bench_transform.py --users 100000 --groups 2000

Generates a tenant file with the emulator's generator (or takes --tenant FILE), stages it as extract
would (the mapping's $select, membership rows from members@delta; no HTTP), then times the transform
stage (fold into the snapshot, scope, records, values fitted to the schema) and the validate stage
(every suite) on that full read, and again on a delta round changing --changes users of the
committed snapshot.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

from domain_sync.config import Settings  # noqa: E402
from domain_sync.context import StageContext  # noqa: E402
from domain_sync.extract.staging import ParquetSink, TenantPageWriter  # noqa: E402
from domain_sync.mapping import load_mapping  # noqa: E402
from domain_sync.records import MEMBER_SCHEMA, object_schema  # noqa: E402
from domain_sync.runs import RunFolder, write_json_atomic  # noqa: E402
from domain_sync.state import StateStore  # noqa: E402
from domain_sync.transform import stage as transform_stage  # noqa: E402
from domain_sync.validate import stage as validate_stage  # noqa: E402


def offline(settings, run) -> StageContext:
    return StageContext(settings, run, endpoint_factory=lambda s: None)

def generate(users: int, groups: int, seed: int, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "emulator", "generate", "--users", str(users), "--groups", str(groups),
                    "--seed", str(seed), "--out", str(out)], cwd=ROOT, check=True)
    return out


def stage(run: RunFolder, settings: Settings, tenant: dict, full: bool) -> None:
    """Write the run's extract/ folder as a delta round returning `tenant`'s objects would."""
    mapping = load_mapping(settings.mapping_file)
    for resource, kind in (("users", "user"), ("groups", "group")):
        select = mapping.graph_select(kind)
        objects = ParquetSink(run.staged(resource), object_schema(select))
        members = ParquetSink(run.staged("members"), MEMBER_SCHEMA) if resource == "groups" else None
        writer = TenantPageWriter(objects, members, select)
        page = []
        for obj in tenant.get(resource, []):
            item = {name: obj.get(name) for name in select if name != "members" and name in obj}
            item["id"] = obj["id"]
            if resource == "groups" and "members" in obj:
                item["members@delta"] = obj["members"]
            page.append(item)
            if len(page) == 1000:
                writer.write(page)
                page = []
        writer.write(page)
        writer.close()
    for r in ("users", "groups"):
        write_json_atomic(run.delta_link(r), {"link": f"bench://{r}/{run.run_id}", "full_read": full})
    write_json_atomic(run.state_read, {"version": StateStore(settings.state_dir).version()})  # as extract records it


def timed(label: str, fn):
    """Run fn; print wall-clock and CPU seconds (CPU time is steadier on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<34s} {seconds:7.2f} s  ({cpu_seconds:.2f} s CPU)")
    return result, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--changes", type=int, default=1_000, help="users changed in the delta round")
    parser.add_argument("--tenant", type=Path, help="a tenant file (skips generation)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        tmp_path = Path(tmp)
        tenant_file = args.tenant or generate(args.users, args.groups, args.seed, tmp_path / "tenant.json")
        tenant = json.loads(tenant_file.read_text(encoding="utf-8"))
        n_users, n_groups = len(tenant["users"]), len(tenant["groups"])
        n_members = sum(len(g.get("members") or []) for g in tenant["groups"])
        print(f"tenant: {n_users} users, {n_groups} groups, {n_members} memberships")
        settings = Settings(data_dir=str(tmp_path / "data"))
        timed("import Great Expectations", lambda: __import__("great_expectations"))

        print("full read:")
        run = RunFolder(settings.runs_dir, "bench-full")
        _, t_stage = timed("stage (as extract writes it)", lambda: stage(run, settings, tenant, full=True))
        summary, t_transform = timed("transform", lambda: transform_stage.run(offline(settings, run)))
        checked, t_validate = timed("validate", lambda: validate_stage.run(offline(settings, run)))
        print(f"  transform + validate               {t_transform + t_validate:7.2f} s"
              f"  ({summary['user_records']} user records, {sum(checked['quarantined'].values())} quarantined)")
        StateStore(settings.state_dir).commit(run.snapshot_dir, {"users": "x", "groups": "x"},
                                             extra_files=run.carried_files())

        rng = random.Random(args.seed)
        changed = rng.sample(tenant["users"], min(args.changes, n_users))
        delta = {"users": [dict(u, jobTitle=f"{u.get('jobTitle') or ''} II") for u in changed], "groups": []}
        print(f"delta round ({len(changed)} users changed):")
        run = RunFolder(settings.runs_dir, "bench-delta")
        timed("stage", lambda: stage(run, settings, delta, full=False))
        _, d_transform = timed("transform", lambda: transform_stage.run(offline(settings, run)))
        _, d_validate = timed("validate", lambda: validate_stage.run(offline(settings, run)))
        print(f"  transform + validate               {d_transform + d_validate:7.2f} s")
        StateStore(settings.state_dir).commit(run.snapshot_dir, {"users": "x", "groups": "x"},
                                             extra_files=run.carried_files())

        print("no-change round:")
        run = RunFolder(settings.runs_dir, "bench-no-change")
        timed("stage", lambda: stage(run, settings, {"users": [], "groups": []}, full=False))
        _, n_transform = timed("transform", lambda: transform_stage.run(offline(settings, run)))
        _, n_validate = timed("validate", lambda: validate_stage.run(offline(settings, run)))
        print(f"  transform + validate               {n_transform + n_validate:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
