"""The sync benchmark's figures, targets and writers (benchmarks/sync_report.py), on made-up measurements."""

from __future__ import annotations

import json

import pytest

from benchmarks import sync_report as r


def stages(**seconds: float) -> dict:
    return {name: {"seconds": s, "process_seconds": s + 1, "peak_rss_mib": 100.0 + 10 * i,
                   "writes": 7 if name == "apply" else 0}
            for i, (name, s) in enumerate(seconds.items())}


def result(size: str, incremental_s: float | None = None, recipe: dict | None = None) -> dict:
    out = {
        "size": size,
        "tenant": {"users": 10, "groups": 2, "memberships": 12, "seed": 1},
        "plan_modes": ["full"],
        "ceiling": {"off": r.ceiling_figures(objects=100, writes=150, seconds=10.0, connections=4),
                    "on": r.ceiling_figures(objects=100, writes=150, seconds=40.0, connections=4)},
        "full_sync": {"off": r.run_figures(stages(extract_users=2.0, plan=3.0, apply=15.0), objects=100),
                      "on": r.run_figures(stages(extract_users=2.0, apply=48.0), objects=100)},
        "no_change": {"full": r.run_figures({**stages(plan=4.0), "apply": {"seconds": 0.5, "peak_rss_mib": 90.0,
                                                                             "writes": 0}}),
                      "incremental_note": "full only"},
    }
    if incremental_s is not None:
        out["incremental"] = {**r.run_figures(stages(plan=incremental_s)), "changes": 1000,
                              "recipe": recipe or {"seed": 1, "update_user": 1000}}
    return out


def test_percentile_interpolates_between_ranks():
    assert r.percentile([], 95) is None
    assert r.percentile([5.0], 95) == 5.0
    assert r.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert r.percentile(list(range(1, 21)), 95) == pytest.approx(19.05)
    assert r.percentile([10.0, 20.0], 100) == 20.0


def test_run_figures_sum_the_stages_own_time_and_take_the_highest_peak():
    run = r.run_figures(stages(extract_users=2.0, plan=3.0, apply=15.0), objects=100)
    assert run["seconds"] == 20.0
    assert run["process_seconds"] == 23.0
    assert run["writes"] == 7
    assert run["peak_rss_mib"] == 120.0
    assert run["objects_per_s"] == 5.0


def test_derive_computes_the_issue_figures_and_checks_the_targets():
    small = r.derive(result("small", incremental_s=8.0))
    # sync 100 objects in 20 s against bare writes of them in 10 s: half the ceiling's throughput
    assert small["ceiling_ratio"] == {"off": 0.5, "on": 0.8}
    assert small["no_change_writes"] == 0
    assert small["no_change_full_s"] == 4.5
    assert small["no_change_incremental_s"] is None
    assert small["incremental_s"] == 8.0
    assert small["peak_rss_mib"] == 120.0  # the passwords-off full sync's apply
    assert small["growth_ratio"] is None  # no large result yet
    targets = {t["key"]: t for t in small["targets"]}
    assert targets["ceiling_ratio.off"]["met"] is False
    assert targets["no_change_writes"]["met"] is True
    assert targets["freshness_p95_s"]["met"] is None and targets["freshness_p95_s"]["note"] == "not measured"
    # set for the large size: shown, not judged on small
    assert targets["peak_rss_mib"]["value"] == 120.0 and targets["peak_rss_mib"]["met"] is None

    large = result("large", incremental_s=10.0)
    large["freshness"] = {"samples": [{"seconds": s} for s in (50.0, 70.0, 90.0, 130.0)]}
    r.derive(large, {"small": small})
    assert large["growth_ratio"] == 1.25
    assert large["freshness_p50_s"] == 80.0
    assert large["freshness_p95_s"] == 124.0
    targets = {t["key"]: t for t in large["targets"]}
    assert targets["growth_ratio"]["met"] is True
    assert targets["freshness_p95_s"]["met"] is False
    assert targets["incremental_s"]["met"] is True
    assert targets["peak_rss_mib"]["met"] is True


def test_the_freshness_row_names_the_domain_the_scheduled_runs_kept_fresh():
    samples = [{"seconds": 40.0}, {"seconds": 60.0}]
    synced, fresh, older = result("large"), result("small"), result("tiny")
    synced["freshness"] = {"samples": samples, "domain": r.SYNCED_DOMAIN}
    fresh["freshness"] = {"samples": samples, "domain": r.FRESH_DOMAIN}
    older["freshness"] = {"samples": samples}
    results = {"tiny": older, "small": fresh, "large": synced}
    for one in results.values():
        r.derive(one)
    row = next(line for line in r.markdown(results).splitlines() if line.startswith("| `freshness_p95_s` |"))
    assert row == ("| `freshness_p95_s` | 59.0 s (2 samples) | 59.0 s (2 samples, over a fresh domain) "
                   "| 59.0 s (2 samples, over the synced domain) |")


def test_growth_ratio_needs_the_same_recipe_on_both_sizes():
    small = result("small", incremental_s=8.0, recipe={"seed": 1, "update_user": 1000})
    large = r.derive(result("large", incremental_s=10.0, recipe={"seed": 2, "update_user": 1000}), {"small": small})
    assert large["growth_ratio"] is None


def test_a_write_in_a_no_change_run_fails_its_target():
    res = result("small")
    res["no_change"]["full"]["writes"] = 3
    targets = {t["key"]: t for t in r.derive(res)["targets"]}
    assert targets["no_change_writes"] == {**targets["no_change_writes"], "value": 3, "met": False}


def test_json_markdown_and_plot_writers(tmp_path):
    small = r.derive(result("small", incremental_s=8.0))
    r.write_json(tmp_path / "sync-small.json", small)
    r.write_json(tmp_path / "sync-tiny.json", r.derive(result("tiny")))
    found = r.read_results(tmp_path)
    assert list(found) == ["tiny", "small"]
    assert found["small"] == json.loads(json.dumps(small))
    for key in ("ceiling_ratio", "growth_ratio", "no_change_writes", "peak_rss_mib", "freshness_p95_s", "targets"):
        assert key in found["small"]

    text = r.markdown(found)
    lines = text.splitlines()
    assert lines[0] == "| | tiny | small |"
    assert "| `ceiling_ratio`, passwords off | 0.50 | 0.50 |" in lines
    assert "| no-change run, incremental | full only | full only |" in lines
    assert any(line.startswith("| `ceiling_ratio.off` >= 0.9") and line.endswith("0.50: **not met** |")
               for line in lines)
    assert any(line.startswith("| `no_change_writes` == 0") and "0: met" in line for line in lines)
    assert "| small incremental, 1000 changes |  |  |  |  | 8.0 (100) |  |  |  |  | 8.0 |" in lines
    assert r.markdown({}) == "No sync benchmark results yet.\n"

    png = r.plot(found, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_change_recipe_is_the_same_at_two_sizes_and_takes_no_existing_id():
    from benchmarks.bench_sync import change_recipe, recipe_counts
    from emulator.generate import generate_tenant

    counts = []
    for users, groups in ((600, 60), (1200, 120)):
        tenant = generate_tenant(users, groups, seed=2026, memberships=users * 5)
        recipe = change_recipe(tenant, 200, seed=2026)
        assert len(recipe) == 200
        taken = {u["id"] for u in tenant["users"]} | {g["id"] for g in tenant["groups"]}
        assert not [object_id for kind, object_id, _ in recipe if kind == "create_user" and object_id in taken]
        changed = [object_id for kind, object_id, _ in recipe if kind in ("update_user", "delete_user")]
        assert len(changed) == len(set(changed)), "a user changed twice"
        # every membership change is one the tenant takes: a member removed is held, one added is not, once each
        holds = {(g["id"], m["id"]) for g in tenant["groups"] for m in g.get("members", [])}
        pairs = [(group, body["member"], kind) for kind, group, body in recipe if kind.endswith("_member")]
        assert len({(g, m) for g, m, _ in pairs}) == len(pairs)
        assert all(((g, m) in holds) == (kind == "remove_member") for g, m, kind in pairs)
        counts.append(recipe_counts(recipe, 2026))
    assert counts[0] == counts[1] == {"seed": 2026, "attributes": 100, "rename": 20, "delete_user": 20,
                                      "create_user": 40, "add_member": 10, "remove_member": 10}



def test_a_later_round_of_the_recipe_changes_other_users_and_names_its_newcomers_apart():
    from benchmarks.bench_sync import change_recipe
    from emulator.generate import generate_tenant

    tenant = generate_tenant(12000, 120, seed=2026, memberships=30000)
    first, second = (change_recipe(tenant, 200, seed=2026, round_=n) for n in (0, 1))
    assert first == change_recipe(tenant, 200, seed=2026)

    def touched(recipe):
        return {object_id for kind, object_id, _ in recipe if kind in ("update_user", "delete_user")}

    def newcomers(recipe, key):
        return {body[key] if key else object_id for kind, object_id, body in recipe if kind == "create_user"}

    assert touched(first) and touched(second) and not touched(first) & touched(second)
    for key in ("userPrincipalName", "mailNickname", None):
        assert len(newcomers(first, key)) == len(newcomers(second, key)) == 40
        assert not newcomers(first, key) & newcomers(second, key)
    removed = {body["member"] for kind, _, body in second if kind == "remove_member"}
    assert not removed & touched(first)

def test_a_dry_run_of_the_first_sync_counts_for_the_peak_and_is_shown():
    measured = result("large")
    measured["dry_run"] = r.run_figures({name: {"seconds": 1.0, "peak_rss_mib": 900.0 + i, "writes": 0}
                                         for i, name in enumerate(r.STAGES[:5])})
    large = r.derive(measured)
    assert large["peak_rss_mib"] == 904.0  # the dry run's plan, above every other run's stages
    text = r.markdown({"large": large})
    assert "| first sync up to its plan (dry run) | 5.0 s (0 writes) |" in text
    assert "| large first sync up to its plan (dry run) |" in text


def test_the_bare_writes_of_an_incremental_round_give_the_dcs_own_growth_and_the_applys_share():
    small, large = result("small", incremental_s=8.0), result("large", incremental_s=20.0)
    large["incremental"] = {**r.run_figures(stages(plan=5.0, apply=15.0)), "changes": 1000,
                            "recipe": {"seed": 1, "update_user": 1000}}
    small["incremental_bare"] = {"seconds": 2.0, "writes": 900}
    large["incremental_bare"] = {"seconds": 10.0, "writes": 950}
    r.derive(small, {"large": large})
    r.derive(large, {"small": small})
    assert small["bare_growth_ratio"] == large["bare_growth_ratio"] == 5.0
    assert large["apply_to_bare_ratio"] == 1.5
    assert small["apply_to_bare_ratio"] is None  # its incremental run has no apply stage
    text = r.markdown({"small": small, "large": large})
    assert "| bare writes, large / small (`bare_growth_ratio`) | 5.00 | 5.00 |" in text
    assert "10.0 s (950 writes)" in text
    assert r.derive(result("small", incremental_s=8.0))["bare_growth_ratio"] is None


def test_freshness_changes_only_users_the_recipes_applied_before_it_left_in_the_tenant(tmp_path):
    """Freshness over the synced domain runs after the incremental rounds: a user a recipe deleted cannot be
    changed (the tenant answers 404), so the draw leaves every deleted user out."""
    import random
    from types import SimpleNamespace

    from benchmarks.bench_sync import Measurement, change_recipe, freshness_users
    from emulator.generate import generate_tenant

    tenant = generate_tenant(60, 6, seed=7, memberships=120)
    calls = []
    admin = SimpleNamespace(**{name: (lambda *args, name=name: calls.append((name, args[0])))
                               for name in ("update_user", "delete_user", "create_user", "add_member",
                                            "remove_member")})
    m = Measurement(tmp_path, "sync-off", tmp_path / "tenant.json", False, {})
    m.emulator = SimpleNamespace(admin=admin)
    recipe = change_recipe(tenant, 40, seed=7)
    m.apply_recipe(recipe)
    deleted = {object_id for kind, object_id in calls if kind == "delete_user"}
    assert deleted and m.gone == deleted
    live = len(tenant["users"]) - len(deleted)
    drawn = freshness_users(m, random.Random(1), tenant, live)  # every user still there, none deleted
    assert len(drawn) == live and not {u["id"] for u in drawn} & deleted


def test_a_stage_profile_is_kept_as_its_call_tree_and_a_session_pyinstrument_loads(tmp_path):
    from pyinstrument import Profiler
    from pyinstrument.session import Session

    from benchmarks.bench_sync import ROOT, write_profile

    def busy_stage():
        return sum(i * i for i in range(300_000))

    profiler = Profiler(interval=0.001)
    profiler.start()
    busy_stage()
    profiler.stop()
    write_profile(profiler, tmp_path / "manual__x-plan")
    write_profile(profiler, tmp_path / "scheduled__2026-12-07T08:00:00.5-plan")  # a run id with a dot
    assert (tmp_path / "scheduled__2026-12-07T08:00:00.5-plan.txt").exists()
    text = (tmp_path / "manual__x-plan.txt").read_text(encoding="utf-8")
    assert "busy_stage" in text and "tests/unit/test_bench_sync_report.py" in text
    assert str(ROOT) not in text  # paths in the checkout are relative: a profile can be shared as it is
    assert Session.load(str(tmp_path / "manual__x-plan.pyisession")).duration > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_membership_change_of_the_recipe_is_one_the_tenant_takes(seed):
    from benchmarks.bench_sync import change_recipe
    from emulator.generate import generate_tenant

    tenant = generate_tenant(4000, 40, seed=seed, memberships=40000)
    holds = {(g["id"], m["id"]) for g in tenant["groups"] for m in g.get("members", [])}
    for round_, from_end in ((0, False), (1, False), (0, True)):
        recipe = change_recipe(tenant, 1000, seed=seed, round_=round_, from_end=from_end)
        pairs = [(group, body["member"], kind) for kind, group, body in recipe if kind.endswith("_member")]
        assert len(pairs) == 100 and len({(g, m) for g, m, _ in pairs}) == len(pairs)
        assert all(((g, m) in holds) == (kind == "remove_member") for g, m, kind in pairs)
