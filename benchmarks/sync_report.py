"""Figures, targets and writers of the sync benchmark (benchmarks/bench_sync.py): pure functions, no timing.

A result is one JSON document per tenant size (benchmarks/results/sync-<size>.json). bench_sync.py fills
in what it measured (`ceiling`, `full_sync`, `no_change`, `incremental`, `freshness`); `derive` computes
the figures the issue names (ceiling_ratio, growth_ratio, no_change_writes, peak_rss_mib,
freshness_p50_s, freshness_p95_s) and checks the targets; `markdown` and `plot` show every size measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Tenant shapes: users, groups, member values of all groups (the first group holds every user).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"users": 500, "groups": 50, "memberships": 2_500, "changes": 100},
    "small": {"users": 10_000, "groups": 1_000, "memberships": 50_000, "changes": 1_000},
    "large": {"users": 100_000, "groups": 10_000, "memberships": 500_000, "changes": 1_000},
    "xl": {"users": 250_000, "groups": 25_000, "memberships": 1_250_000, "changes": 1_000},
}
# Stages of one run, in the DAG's order.
STAGES = ["extract_users", "extract_groups", "transform", "validate", "plan", "apply", "credentials", "commit",
          "report"]
PASSWORDS = ("off", "on")
RSS_LIMIT_MIB = 1536
# (key, what, comparison, limit, size the target is set for or None for every size)
TARGETS: list[tuple[str, str, str, float, str | None]] = [
    ("ceiling_ratio.off", "full sync / ceiling throughput, passwords off", ">=", 0.9, None),
    ("ceiling_ratio.on", "full sync / ceiling throughput, passwords on", ">=", 0.9, None),
    ("growth_ratio", "incremental of the same changes, large / small summed stage time", "<=", 1.3, None),
    ("incremental_s", "incremental run of the changes, summed stage time (s)", "<=", 30.0, "large"),
    ("no_change_incremental_s", "no-change incremental run, summed stage time (s)", "<=", 10.0, "large"),
    ("no_change_full_s", "no-change full reconcile, summed stage time (s)", "<=", 120.0, "large"),
    ("no_change_writes", "LDAP writes of a no-change run", "==", 0, None),
    ("peak_rss_mib", "peak RSS of any task process (MiB)", "<", RSS_LIMIT_MIB, "large"),
    ("freshness_p95_s", "change to visible in the domain, p95 (s), 1-minute schedule", "<=", 120.0, None),
]


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0..100) by linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summed_seconds(stages: dict[str, dict[str, Any]]) -> float:
    """Summed stage time of a run: each stage's own time, without its process's start and imports."""
    return sum(s["seconds"] for s in stages.values())


def run_figures(stages: dict[str, dict[str, Any]], objects: int | None = None) -> dict[str, Any]:
    """A run's totals from its stages ({stage: {seconds, cpu_seconds, process_seconds, peak_rss_mib, writes}})."""
    seconds = summed_seconds(stages)
    out: dict[str, Any] = {
        "stages": stages,
        "seconds": round(seconds, 3),
        "process_seconds": round(sum(s.get("process_seconds", s["seconds"]) for s in stages.values()), 3),
        "writes": sum(s.get("writes", 0) for s in stages.values()),
        # The client's CPU seconds (stages measured before this figure existed count none).
        "cpu_seconds": round(sum(s.get("cpu_seconds", 0) for s in stages.values()), 3),
        "peak_rss_mib": max((s["peak_rss_mib"] for s in stages.values()), default=None),
    }
    if objects is not None:
        out["objects"] = objects
        out["objects_per_s"] = round(objects / seconds, 2) if seconds else None
    return out


def ceiling_figures(objects: int, writes: int, seconds: float, connections: int) -> dict[str, Any]:
    return {"objects": objects, "writes": writes, "seconds": round(seconds, 3), "connections": connections,
            "objects_per_s": round(objects / seconds, 2) if seconds else None,
            "writes_per_s": round(writes / seconds, 2) if seconds else None}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _all_runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    runs = list((result.get("full_sync") or {}).values())
    if result.get("dry_run"):
        runs.append(result["dry_run"])
    runs += [r for r in (result.get("no_change") or {}).values() if isinstance(r, dict)]
    if result.get("incremental"):
        runs.append(result["incremental"])
    return runs


def derive(result: dict[str, Any], other_sizes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Add the issue's figures and the targets to `result` (in place; also returned). `other_sizes`: the
    results of the other sizes by name, for growth_ratio (large / small)."""
    sizes = dict(other_sizes or {})
    sizes[result["size"]] = result
    ceiling, full = result.get("ceiling") or {}, result.get("full_sync") or {}
    result["ceiling_ratio"] = {
        pw: ratio((full.get(pw) or {}).get("objects_per_s"), (ceiling.get(pw) or {}).get("objects_per_s"))
        for pw in PASSWORDS}
    no_change = result.get("no_change") or {}
    measured = [r for r in no_change.values() if isinstance(r, dict)]
    result["no_change_writes"] = sum(r["writes"] for r in measured) if measured else None
    result["no_change_full_s"] = (no_change.get("full") or {}).get("seconds")
    result["no_change_incremental_s"] = (no_change.get("incremental") or {}).get("seconds")
    result["incremental_s"] = (result.get("incremental") or {}).get("seconds")
    small, large = (sizes.get(name, {}).get("incremental") or {} for name in ("small", "large"))
    same_changes = small.get("recipe") == large.get("recipe")
    result["growth_ratio"] = ratio(large.get("seconds"), small.get("seconds")) if same_changes else None
    # The DC's own cost of an incremental round (bare writes of its plan): large / small, and the sync's apply
    # against it at this size.
    small_bare, large_bare = (sizes.get(name, {}).get("incremental_bare") or {} for name in ("small", "large"))
    result["bare_growth_ratio"] = ratio(large_bare.get("seconds"), small_bare.get("seconds"))
    apply_s = (((result.get("incremental") or {}).get("stages") or {}).get("apply") or {}).get("seconds")
    result["apply_to_bare_ratio"] = ratio(apply_s, (result.get("incremental_bare") or {}).get("seconds"))
    peaks = [r["peak_rss_mib"] for r in _all_runs(result) if r.get("peak_rss_mib") is not None]
    result["peak_rss_mib"] = max(peaks) if peaks else None
    freshness = result.get("freshness") or {}
    latencies = [s["seconds"] for s in freshness.get("samples", []) if s.get("seconds") is not None]
    result["freshness_p50_s"] = _round(percentile(latencies, 50))
    result["freshness_p95_s"] = _round(percentile(latencies, 95))
    result["targets"] = evaluate_targets(result)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def figure(result: dict[str, Any], key: str) -> Any:
    """A figure by dotted key (ceiling_ratio.off)."""
    value: Any = result
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and whether it is met: True, False, or None (not measured, or set for
    another size: then `note` says so)."""
    out = []
    for key, what, op, limit, size in TARGETS:
        value = figure(result, key)
        met = None if value is None else _compare(value, op, limit)
        entry = {"key": key, "target": f"{op} {limit:g}", "what": what, "value": value, "met": met}
        if size and size != result["size"]:
            entry["note"] = f"the target is set for the {size} size"
            entry["met"] = None
        elif value is None:
            entry["note"] = "not measured"
        out.append(entry)
    return out


def _compare(value: float, op: str, limit: float) -> bool:
    return {">=": value >= limit, "<=": value <= limit, "<": value < limit, "==": value == limit}[op]


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")


def read_results(folder: Path) -> dict[str, dict[str, Any]]:
    """Every size's result in folder (sync-<size>.json), by size, in SIZES order."""
    found = {}
    for size in SIZES:
        path = folder / f"sync-{size}.json"
        if path.exists():
            found[size] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value:,.{digits}f}{unit}"


def _met(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    if entry["met"] is None:
        return entry.get("note", "")
    return "met" if entry["met"] else "**not met**"


# freshness["domain"]: which domain the scheduled runs kept fresh (older results say neither)
SYNCED_DOMAIN = "the domain the full sync loaded (its state committed)"
FRESH_DOMAIN = "an empty domain (the first run loads the tenant)"


def _freshness_domain(freshness: dict[str, Any]) -> str:
    domain = freshness.get("domain")
    return {SYNCED_DOMAIN: ", over the synced domain", FRESH_DOMAIN: ", over a fresh domain"}.get(domain, "")


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The figures of every size measured, and their targets, as Markdown tables."""
    if not results:
        return "No sync benchmark results yet.\n"
    sizes = list(results)
    head = "| | " + " | ".join(sizes) + " |\n|---|" + "---|" * len(sizes) + "\n"

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(results[s]) for s in sizes) + " |\n"

    def run_cell(path: tuple[str, ...]) -> Any:
        def cell(r: dict[str, Any]) -> str:
            run = r
            for part in path:
                run = (run or {}).get(part)
            if not isinstance(run, dict):
                return "not measured"
            text = f"{run['seconds']:,.1f} s"
            if run.get("objects_per_s"):
                text += f", {run['objects_per_s']:,.0f} objects/s"
            if "writes" in run:
                text += f" ({run['writes']:,} writes)"
            return text
        return cell

    def tenant(r: dict[str, Any]) -> str:
        t = r["tenant"]
        return f"{t['users']:,} users, {t['groups']:,} groups, {t['memberships']:,} member values"

    text = head + row("tenant", tenant)
    text += row("plan modes", lambda r: ", ".join(r.get("plan_modes", [])) or "")
    for pw in PASSWORDS:
        text += row(f"ceiling: bare ldap3 writes, passwords {pw}", run_cell(("ceiling", pw)))
        text += row(f"full sync (every stage), passwords {pw}", run_cell(("full_sync", pw)))
        text += row(f"`ceiling_ratio`, passwords {pw}", lambda r, pw=pw: _num(figure(r, f"ceiling_ratio.{pw}"),
                                                                              digits=2))
    text += row("first sync up to its plan (dry run)", run_cell(("dry_run",)))
    text += row("no-change run, full", run_cell(("no_change", "full")))
    text += row("no-change run, incremental",
                lambda r: run_cell(("no_change", "incremental"))(r) if (r.get("no_change") or {}).get("incremental")
                else (r.get("no_change") or {}).get("incremental_note", "not measured"))
    text += row("`no_change_writes`", lambda r: _num(r.get("no_change_writes")))
    text += row("incremental run of the changes", run_cell(("incremental",)))
    text += row("`growth_ratio` (large / small)", lambda r: _num(r.get("growth_ratio"), digits=2))
    text += row("bare ldap3 writes of an incremental plan of the same recipe (the DC's own cost)",
                lambda r: (f"{_num(r['incremental_bare']['seconds'], ' s')} ({_num(r['incremental_bare']['writes'])}"
                           " writes)") if r.get("incremental_bare") else "not measured")
    text += row("bare writes, large / small (`bare_growth_ratio`)",
                lambda r: _num(r.get("bare_growth_ratio"), digits=2))
    text += row("the sync's apply / bare writes of the same kind of round",
                lambda r: _num(r.get("apply_to_bare_ratio"), digits=2))
    text += row("`peak_rss_mib` (any task process)", lambda r: _num(r.get("peak_rss_mib"), " MiB", 0))
    text += row("`freshness_p50_s`", lambda r: _num(r.get("freshness_p50_s"), " s"))
    text += row("`freshness_p95_s`", lambda r: _num(r.get("freshness_p95_s"), " s")
                + (f" ({len(r['freshness'].get('samples', []))} samples{_freshness_domain(r['freshness'])})"
                   if r.get("freshness") else ""))

    text += "\n| target | " + " | ".join(sizes) + " |\n|---|" + "---|" * len(sizes) + "\n"
    for key, what, op, limit, _ in TARGETS:
        def cell(r: dict[str, Any], key: str = key) -> str:
            entry = next((t for t in r.get("targets", []) if t["key"] == key), None)
            value = figure(r, key)
            shown = _num(value, digits=2 if "ratio" in key else 1) if value is not None else "not measured"
            return shown if entry is None or entry["met"] is None and value is None else f"{shown}: {_met(entry)}"
        text += f"| `{key}` {op} {limit:g}: {what} | " + " | ".join(cell(results[s]) for s in sizes) + " |\n"

    text += "\nSummed stage time, by stage (s; peak RSS of the stage's process in MiB):\n\n"
    runs = [(f"{size} {label}", run) for size, r in results.items() for label, run in _labelled_runs(r)]
    text += "| run | " + " | ".join(STAGES) + " | total |\n|---|" + "---|" * (len(STAGES) + 1) + "\n"
    for label, run in runs:
        cells = [f"{run['stages'][s]['seconds']:.1f} ({run['stages'][s]['peak_rss_mib']:.0f})"
                 if s in run["stages"] else "" for s in STAGES]
        text += f"| {label} | " + " | ".join(cells) + f" | {run['seconds']:.1f} |\n"
    return text


def _labelled_runs(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    runs = [(f"full sync, passwords {pw}", run) for pw, run in (result.get("full_sync") or {}).items()]
    if result.get("dry_run"):
        runs.append(("first sync up to its plan (dry run)", result["dry_run"]))
    runs += [(f"no-change, {mode}", run) for mode, run in (result.get("no_change") or {}).items()
             if isinstance(run, dict)]
    if result.get("incremental"):
        runs.append((f"incremental, {result['incremental'].get('changes', '')} changes", result["incremental"]))
    return runs


def plot(results: dict[str, dict[str, Any]], path: Path) -> Path:
    """A PNG of time per stage: one stacked bar per run of every size measured, and the ceiling's bare
    writes (grey) beside the full syncs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(STAGES, plt.get_cmap("tab10").colors, strict=False))
    bars: list[tuple[str, list[tuple[str, float]]]] = []
    for size, r in results.items():
        for pw, ceiling in (r.get("ceiling") or {}).items():
            bars.append((f"{size}: ceiling (bare ldap3 writes), passwords {pw}", [("bare writes", ceiling["seconds"])]))
        for label, run in _labelled_runs(r):
            bars.append((f"{size}: {label}", [(s, run["stages"][s]["seconds"]) for s in STAGES if s in run["stages"]]))
    fig, ax = plt.subplots(figsize=(10, 2.2 + 0.45 * max(1, len(bars))))
    labelled: set[str] = set()
    for y, (_, parts) in enumerate(bars):
        left = 0.0
        for stage, seconds in parts:
            ax.barh(y, seconds, left=left, color=colors.get(stage, "0.6"),
                    label=None if stage in labelled else stage)
            labelled.add(stage)
            left += seconds
        ax.text(left, y, f" {left:,.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [label for label, _ in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds: summed stage time, each stage in a process of its own")
    ax.set_title("Sync benchmark: time per stage (2 shared cores; indicative)")
    if bars:
        fig.legend(ncol=10, fontsize=7, loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
