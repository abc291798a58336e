"""Benchmark of the extract stage's memory against tenant size (prints figures; not a test).

    .venv/bin/python benchmarks/bench_extract.py [--sizes 10000 100000] [--groups-per-user 0.1]

For each size: generates a tenant with the emulator's generator, serves it with the emulator, and runs
the extract stage (users, then groups with members@delta: a full read through the provider's
KiotaRequestAdapterHook, pages streamed to Parquet) in a fresh child process per measurement:
  rss         peak resident memory the extract added over the process after its imports
              (VmHWM after /proc/self/clear_refs, minus VmRSS before), and the time taken;
  tracemalloc peak of Python allocations during the extract (slower; a separate process).
It prints those beside the size of what the extract staged: the Parquet files on disk and the same
frames loaded by pandas (memory_usage(deep=True)), which is what the next stage holds in memory.
Bounded memory means the extract's peak stays flat while the staged frames grow with the tenant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

MB = 1024 * 1024
RESOURCES = ("users", "groups")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(mode: str) -> None:
    """Run in a fresh process: extract both resources and print the measurements as JSON."""
    import tracemalloc

    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook  # noqa: F401

    from domain_sync.config import Settings
    from domain_sync.extract.stage import extract_resource
    from domain_sync.runs import RunFolder

    settings = Settings.from_env()
    run = RunFolder(settings.runs_dir, f"bench-{mode}")
    out = {}
    for resource in RESOURCES:
        if mode == "tracemalloc":
            tracemalloc.start()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kb("VmRSS")
        started = time.perf_counter()
        result = extract_resource(settings, run, resource, full_resync=True)
        seconds = time.perf_counter() - started
        if mode == "tracemalloc":
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            out[resource] = {"tracemalloc_peak_mb": peak / MB}
        else:
            out[resource] = {"rss_before_mb": before / 1024, "rss_peak_mb": _status_kb("VmHWM") / 1024,
                             "rss_added_mb": (_status_kb("VmHWM") - before) / 1024, "seconds": seconds,
                             "objects": result.objects, "member_changes": result.member_changes,
                             "pages": result.pages}
    out["run_dir"] = str(run.path)
    print("BENCH " + json.dumps(out))


def measure(mode: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode], env=env, capture_output=True, text=True,
                          cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode or not lines:
        raise SystemExit(f"child ({mode}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][6:])


def staged_sizes(run_dir: Path) -> dict[str, dict[str, float]]:
    import pandas as pd

    sizes = {}
    for name in ("users", "groups", "members"):
        path = run_dir / "extract" / f"{name}.parquet"
        frame = pd.read_parquet(path)
        sizes[name] = {"rows": len(frame), "parquet_mb": path.stat().st_size / MB,
                       "frame_mb": frame.memory_usage(deep=True).sum() / MB}
    return sizes


def bench_size(users: int, groups: int, seed: int, workdir: Path) -> dict:
    from emulator.testing import start_emulator

    tenant = workdir / f"tenant-{users}.json"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "emulator", "generate", "--users", str(users), "--groups", str(groups),
                    "--seed", str(seed), "--out", str(tenant)], cwd=ROOT, check=True)
    print(f"generated {users:,} users / {groups:,} groups in {time.perf_counter() - started:.1f} s", flush=True)
    emu = start_emulator(tenant, workdir / f"emulator-{users}", timeout=180)
    try:
        results = {}
        for mode in ("rss", "tracemalloc"):
            data_dir = workdir / f"data-{users}-{mode}"
            env = dict(os.environ, **emu.airflow_env("msgraph_tenant"), AIRFLOW_HOME=str(workdir / "airflow"),
                       AIRFLOW__CORE__LOAD_EXAMPLES="False", DOMAIN_SYNC_DATA_DIR=str(data_dir),
                       DOMAIN_SYNC_TENANT_CONN_ID="msgraph_tenant", PYTHONPATH=f"{ROOT / 'include'}:{ROOT}")
            results[mode] = measure(mode, env)
        results["staged"] = staged_sizes(Path(results["rss"]["run_dir"]))
        return results
    finally:
        emu.stop()


def report(users: int, groups: int, r: dict) -> None:
    staged = r["staged"]
    print(f"\n== {users:,} users, {groups:,} groups ({staged['members']['rows']:,} memberships)")
    print(f"  {'resource':<8} {'rows':>9} {'pages':>6} {'time s':>7} {'RSS added MB':>13} {'tracemalloc MB':>15}"
          f" {'parquet MB':>11} {'frame MB':>9}")
    for resource in RESOURCES:
        rss, tm = r["rss"][resource], r["tracemalloc"][resource]
        frames = [staged[resource]] + ([staged["members"]] if resource == "groups" else [])
        rows = "+".join(f"{f['rows']:,}" for f in frames)
        print(f"  {resource:<8} {rows:>9} {rss['pages']:>6} {rss['seconds']:>7.1f} {rss['rss_added_mb']:>13.1f}"
              f" {tm['tracemalloc_peak_mb']:>15.1f} {sum(f['parquet_mb'] for f in frames):>11.1f}"
              f" {sum(f['frame_mb'] for f in frames):>9.1f}")
    print(f"  process RSS after imports: {r['rss']['users']['rss_before_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--groups-per-user", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--child", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        for users in args.sizes:
            groups = max(1, int(users * args.groups_per_user))
            report(users, groups, bench_size(users, groups, args.seed, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
