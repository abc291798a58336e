"""Soak test of convergence: many seeded hostile tenants, each synced into one Samba DC (not a pytest test).

    .venv/bin/python benchmarks/soak_convergence.py --seeds 20 [--start 1] [--users 60] [--groups 12]
        [--changes 25] [--domain-dir DIR] [--address 127.0.0.14] [--report FILE] [--keep-failed DIR]
        [--compare-plans] [--edits] [--stop-at-failure]

Each seed runs the scenario of tests/integration/test_convergence.py (tests.fixtures.convergence.run_scenario)
in a container of its own: local objects whose names collide with the tenant's, the hostile tenant
(emulator.hostile.hostile_tenant with the seed), a sync, an idle sync (no write), random_changes with the
seed (with --edits, hand edits in the domain too), a sync, the domain-only convergence check, an idle sync
(with --compare-plans, every run's plan is made both ways and must be the same). It prints PASS or the problems of each seed,
goes on after a failing seed, and ends with the count (exit code 1 when a seed failed).

The DC: --domain-dir names a folder holding a provisioned local domain (python -m local_domain provision),
started when stopped; without it one is provisioned in a temporary folder (about 40 s) and removed at the
end. --address (default LOCAL_DOMAIN_TEST_ADDRESS, else the first free of 127.0.0.2-20) is used for a new
DC. The sync's own output (its log lines, Airflow's) goes to a log file per seed, kept with the seed's run
folders (extract, plan, apply results of each sync) under --keep-failed DIR for a failing seed; with
--stop-at-failure the soak ends there and leaves that seed's container in the domain (with --domain-dir, to
look at after the soak). Needs root
(Samba).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]
# As the root conftest.py does: Airflow reads AIRFLOW_HOME on first import.
os.environ["AIRFLOW_HOME"] = os.environ.get("DOMAIN_SYNC_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument("--start", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--changes", type=int, default=25, help="random_changes per seed (default 25)")
    parser.add_argument("--domain-dir", type=Path, help="a provisioned local domain to use (started if stopped)")
    parser.add_argument("--address", help="loopback address for a newly provisioned DC")
    parser.add_argument("--realm", help="the realm of a newly provisioned DC (default CORP.EXAMPLE.TEST)")
    parser.add_argument("--report", type=Path, help="write {seed: [problems]} as JSON here")
    parser.add_argument("--keep-failed", type=Path, help="keep a failing seed's folder (runs, log) under this folder")
    parser.add_argument("--stop-at-failure", action="store_true",
                        help="end the soak at the first failing seed and leave its container in the domain (its "
                             "local objects hold domain-wide names the next seeds would take)")
    parser.add_argument("--compare-plans", action="store_true",
                        help="make every run's plan both ways (full and incremental); each difference is a problem")
    parser.add_argument("--edits", action="store_true",
                        help="also edit the domain by hand after the tenant changes (deletions, a rename, attribute "
                             "and member edits, a colliding local object deleted)")
    parser.add_argument("--verbose", action="store_true", help="also print each seed's changes and check counts")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _output_to(path: Path):
    """File descriptors 1 and 2 (Python's and every library's output) into path; yields a writer to the
    real standard output."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    real = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8")
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield real
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            real.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import pytest

    import local_domain as dc
    from tests.fixtures.convergence import run_scenario
    from tests.fixtures.local_domain import LocalDomain, pick_test_address, release_address
    from tests.fixtures.sync_env import delete_subtree, new_sync_env

    work = Path(tempfile.mkdtemp(prefix="soak-convergence-"))
    started_here = False
    if args.domain_dir:
        if args.realm:
            sys.exit("soak: --realm names the realm of a DC it provisions; --domain-dir's DC has its own")
        directory = args.domain_dir.resolve()
        facts = json.loads((directory / "domain.json").read_text(encoding="utf-8"))
        address = facts["host"]
    else:
        directory = work / "domain"
        address = args.address or pick_test_address()
        print(f"provisioning a DC in {directory} on {address} ...", flush=True)
        dc.provision(directory, address, realm=args.realm)
    if dc.status(directory) != "running":
        release_address(address)  # the picked address's LDAP ports, held while provisioning: the DC binds them now
        dc.start(directory)
        started_here = True
    domain = LocalDomain.of(directory, address)

    outcomes: dict[int, list[str]] = {}
    times: dict[int, float] = {}
    try:
        for seed in range(args.start, args.start + args.seeds):
            monkeypatch = pytest.MonkeyPatch()
            seed_dir = work / f"seed-{seed}"
            seed_dir.mkdir()
            env = new_sync_env(domain, seed_dir, monkeypatch)
            began = time.monotonic()
            notes: list[str] = []
            problems: list[str] = []
            with _output_to(seed_dir / "output.log"):
                try:
                    problems = run_scenario(env, seed, args.users, args.groups, args.changes, log=notes.append,
                                            compare_plans=args.compare_plans, edits=args.edits)
                except Exception as exc:  # noqa: BLE001 - a broken seed is reported, the soak goes on
                    problems = [f"scenario error: {type(exc).__name__}: {exc}",
                                *traceback.format_exc().strip().splitlines()[-6:]]
                finally:
                    if env.emulator is not None:
                        env.emulator.stop()
                    if not (problems and args.stop_at_failure):  # that seed's container stays, to look at
                        with contextlib.suppress(Exception):
                            conn = env.ldap()
                            delete_subtree(conn, env.container_dn)
                            conn.unbind()
                    monkeypatch.undo()
            if problems and args.keep_failed:
                args.keep_failed.mkdir(parents=True, exist_ok=True)
                shutil.copytree(seed_dir, args.keep_failed / f"seed-{seed}", dirs_exist_ok=True)
            times[seed] = time.monotonic() - began
            outcomes[seed] = problems
            if problems:
                print(f"seed {seed}: FAIL, {len(problems)} problems ({times[seed]:.0f} s)", flush=True)
                for line in problems:
                    print(f"    {line}", flush=True)
                if args.verbose:
                    for line in notes:
                        print(f"    . {line}", flush=True)
            else:
                print(f"seed {seed}: PASS ({times[seed]:.0f} s)", flush=True)
            if args.report:
                args.report.write_text(json.dumps({str(k): v for k, v in outcomes.items()}, indent=1,
                                                  ensure_ascii=False), encoding="utf-8")
            if problems and args.stop_at_failure:
                print(f"stopped at seed {seed}: its container {env.container_dn} is left in the domain", flush=True)
                break
    finally:
        if started_here:
            dc.stop(directory)
        shutil.rmtree(work, ignore_errors=True)
    failed = [seed for seed, problems in outcomes.items() if problems]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} seeds passed"
          + (f"; failed: {', '.join(map(str, failed))}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
