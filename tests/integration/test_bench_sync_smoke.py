"""Smoke test of the sync benchmark command at the tiny size (marker `benchmark`: never in the suite).

    .venv/bin/python -m pytest -m benchmark tests/integration/test_bench_sync_smoke.py

Runs benchmarks/bench_sync.py --size tiny, every part (passwords off; freshness with two samples), on
fresh Samba DCs and a real scheduler: it checks that the command completes and writes every figure the
issue names, not how fast anything is. Needs root (Samba) and PostgreSQL (started when absent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import sync_report

pytestmark = pytest.mark.benchmark

ROOT = Path(__file__).resolve().parents[2]


def test_the_sync_benchmark_runs_at_the_tiny_size_and_writes_every_figure(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_sync.py"), "--size", "tiny", "--passwords", "off",
         "--freshness-samples", "2", "--freshness-minutes", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=3600, cwd=ROOT, stdin=subprocess.DEVNULL,
        env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    result = json.loads((out / "sync-tiny.json").read_text(encoding="utf-8"))
    assert result["tenant"]["users"] == 500
    assert result["no_change_writes"] == 0
    assert result["ceiling_ratio"]["off"] > 0
    assert result["full_sync"]["off"]["objects"] == result["ceiling"]["off"]["objects"] > 500
    assert set(result["full_sync"]["off"]["stages"]) == {
        "extract_users", "extract_groups", "transform", "validate", "plan", "apply", "credentials", "commit",
        "report"}
    # Apply's phases and the bare writes' phases, side by side: the same operations, the same writes.
    apply_phases, bare = result["full_sync"]["off"]["apply_phases"], result["ceiling"]["off"]["phases"]
    assert [(p["op"], p["changes"]) for p in apply_phases] == [(p["op"], p["writes"]) for p in bare]
    assert sum(p["changes"] for p in apply_phases) == result["full_sync"]["off"]["writes"]
    assert result["incremental"]["writes"] > 0
    # The bare writes of an incremental round's plan leave the domain as the sync would: its run after them
    # writes nothing.
    assert result["incremental_bare"]["writes"] > 0 and result["incremental_bare"]["writes_left_for_the_sync"] == 0
    assert result["peak_rss_mib"] > 50
    assert len(result["freshness"]["samples"]) == 2 and result["freshness_p95_s"] > 0
    # With the sync parts, freshness is measured over the domain the full sync loaded, its state committed: the
    # scheduler's first run is a round like any other, not the whole tenant.
    assert result["freshness"]["domain"] == sync_report.SYNCED_DOMAIN
    assert {t["key"] for t in result["targets"]} >= {"ceiling_ratio.off", "growth_ratio", "no_change_writes",
                                                      "peak_rss_mib", "freshness_p95_s"}
    assert "| `no_change_writes` | 0 |" in (out / "sync.md").read_text(encoding="utf-8")
    assert (out / "sync-stages.png").read_bytes()[:4] == b"\x89PNG"
