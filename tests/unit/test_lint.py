"""The code base passes ruff (rules in pyproject.toml, Airflow's AIR3 rules included) and the
architecture contracts of import-linter (pyproject.toml, [tool.importlinter])."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "domain_sync"
STAGES = {"extract", "transform", "validate", "plan", "apply", "credentials"}
ENTRY_POINTS = {"pipeline", "tasks", "stage_operator"}


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_every_module_of_the_package_is_under_a_contract():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    shared = {m.split(".", 1)[1] for c in config if c["type"] == "forbidden" for m in c["source_modules"]}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    unlisted = modules - shared - STAGES - ENTRY_POINTS
    assert not unlisted, f"add {sorted(unlisted)} to the shared-layer contract (or make it a stage) in pyproject.toml"
