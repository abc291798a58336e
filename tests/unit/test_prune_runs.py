"""Run folders are kept for a number of runs and of days, pruned oldest first at the end of the report
stage; never the current run, a newer one, or a run without a summary younger than a day."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from domain_sync import summary
from domain_sync.config import Settings, SettingsError
from domain_sync.context import StageContext
from domain_sync.runs import DAY_SECONDS, RunFolder, prune_runs, runs_by_time

NOW = time.time()
HOUR = 3600


def make_run(runs_dir, name: str, age_seconds: float, with_summary: bool = True) -> RunFolder:
    run = RunFolder(runs_dir, name)
    run.path.mkdir(parents=True)
    stamp = NOW - age_seconds
    if with_summary:
        section = run.summary_dir / "report.json"
        section.parent.mkdir()
        section.write_text(json.dumps({"done": True}))
        os.utime(section, (stamp, stamp))
    os.utime(run.path, (stamp, stamp))
    return run


def names(runs_dir) -> set[str]:
    return {p.name for p in runs_dir.iterdir()}


def test_runs_are_ordered_by_their_summary_else_their_folder(tmp_path):
    make_run(tmp_path, "summary-old", 3 * HOUR)
    starting = make_run(tmp_path, "starting", 2 * HOUR, with_summary=False)
    newest = make_run(tmp_path, "summary-new", HOUR)
    os.utime(newest.path, (NOW - 9 * HOUR, NOW - 9 * HOUR))  # the folder's own time does not count
    (tmp_path / "a-file").write_text("not a run")
    runs = runs_by_time(tmp_path)
    assert [r.path.name for r in runs] == ["summary-old", "starting", "summary-new"]
    assert [r.has_summary for r in runs] == [True, False, True] and runs[1].mtime == starting.path.stat().st_mtime
    assert [r.path.name for r in runs_by_time(tmp_path, newest_first=True)] == ["summary-new", "starting", "summary-old"]
    assert runs_by_time(tmp_path / "none") == []


def test_the_latest_run_is_the_newest_with_a_summary(tmp_path):
    make_run(tmp_path / "runs", "done", 2 * HOUR)
    make_run(tmp_path / "runs", "starting", 0, with_summary=False)
    assert summary.latest_run(tmp_path).name == "done"
    assert summary.latest_run(tmp_path / "empty") is None


def test_runs_beyond_the_count_go_oldest_first(tmp_path):
    current = make_run(tmp_path, "r0", 0)
    for i in range(1, 6):
        make_run(tmp_path, f"r{i}", i * HOUR)
    assert prune_runs(current, keep_runs=3, keep_days=30, now=NOW) == ["r5", "r4", "r3"]
    assert names(tmp_path) == {"r0", "r1", "r2"}


def test_runs_that_wrote_stay_for_the_days_whatever_the_count_of_runs_that_did_not(tmp_path):
    from domain_sync.runs import write_json_atomic

    current = make_run(tmp_path, "r0", 0)
    for i in range(1, 8):
        run = make_run(tmp_path, f"r{i}", i * HOUR)
        if i in (2, 6):  # these wrote to the domain: the history `why` answers from
            write_json_atomic(run.apply_results, {"total_writes": 3})
        elif i == 4:
            write_json_atomic(run.apply_results, {"total_writes": 0})
    old = make_run(tmp_path, "wrote-long-ago", 40 * DAY_SECONDS)
    write_json_atomic(old.apply_results, {"total_writes": 9})
    # Runs that wrote nothing, newest first: r0 (current), r1, r3, r4 | r5, r7 beyond keep_runs=4.
    assert prune_runs(current, keep_runs=4, keep_days=30, now=NOW) == ["wrote-long-ago", "r7", "r5"]
    assert names(tmp_path) == {"r0", "r1", "r2", "r3", "r4", "r6"}


def test_runs_older_than_the_days_go_whatever_the_count(tmp_path):
    current = make_run(tmp_path, "today", 0)
    make_run(tmp_path, "last-week", 7 * DAY_SECONDS)
    make_run(tmp_path, "two-months-ago", 60 * DAY_SECONDS)
    make_run(tmp_path, "just-over", 30 * DAY_SECONDS + 60)
    assert prune_runs(current, keep_runs=50, keep_days=30, now=NOW) == ["two-months-ago", "just-over"]
    assert names(tmp_path) == {"today", "last-week"}


def test_the_current_run_and_newer_runs_stay(tmp_path):
    current = make_run(tmp_path, "rerun-of-an-old-run", 40 * DAY_SECONDS)
    make_run(tmp_path, "older", 41 * DAY_SECONDS)
    make_run(tmp_path, "newer-a", 2 * HOUR)
    make_run(tmp_path, "newer-b", 1 * HOUR)
    assert prune_runs(current, keep_runs=1, keep_days=30, now=NOW) == ["older"]
    assert names(tmp_path) == {"rerun-of-an-old-run", "newer-a", "newer-b"}


def test_a_run_without_a_summary_stays_for_a_day(tmp_path):
    current = make_run(tmp_path, "current", 0)
    make_run(tmp_path, "starting", 2 * HOUR + 1, with_summary=False)  # older than current, beyond the count
    make_run(tmp_path, "abandoned", 2 * DAY_SECONDS, with_summary=False)
    make_run(tmp_path, "done", 3 * HOUR)
    assert prune_runs(current, keep_runs=1, keep_days=30, now=NOW) == ["abandoned", "done"]
    assert names(tmp_path) == {"current", "starting"}


def test_the_summarys_time_counts_not_the_folders(tmp_path):
    current = make_run(tmp_path, "current", 0)
    old = make_run(tmp_path, "old", 40 * DAY_SECONDS)
    os.utime(old.path, (NOW, NOW))  # something touched the folder; the run is still 40 days old
    assert prune_runs(current, keep_runs=50, keep_days=30, now=NOW) == ["old"]


def test_nothing_to_prune_is_said_too(tmp_path, caplog):
    current = make_run(tmp_path, "only", 0)
    with caplog.at_level(logging.INFO, logger="domain_sync.runs"):
        assert prune_runs(current, keep_runs=50, keep_days=30) == []
    assert "removed 0" in caplog.text


@pytest.mark.parametrize("name", ["keep_runs", "keep_run_days"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_keep_settings_are_at_least_one(name, value):
    with pytest.raises(SettingsError, match=f"DOMAIN_SYNC_{name.upper()}"):
        Settings.from_env({f"DOMAIN_SYNC_{name.upper()}": value})


def test_keep_settings_defaults_and_overrides():
    assert (Settings().keep_runs, Settings().keep_run_days) == (50, 30)
    settings = Settings.from_env({"DOMAIN_SYNC_KEEP_RUNS": "1", "DOMAIN_SYNC_KEEP_RUN_DAYS": "7"})
    assert (settings.keep_runs, settings.keep_run_days) == (1, 7)


def test_the_report_stage_prunes_and_logs_how_many(tmp_path, caplog):
    settings = Settings(data_dir=str(tmp_path), keep_runs=2, keep_run_days=30)
    for i in range(1, 5):
        make_run(settings.runs_dir, f"scheduled__{i}", i * HOUR)
    ctx = StageContext.offline(settings, "scheduled__0")
    ctx.run.update_summary("commit", {"committed": True})
    with caplog.at_level(logging.INFO, logger="domain_sync.runs"):
        result = summary.run(ctx)
    assert result["runs_pruned"] == 3
    assert names(settings.runs_dir) == {"scheduled__0", "scheduled__1"}
    assert "removed 3" in caplog.text
