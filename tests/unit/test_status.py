"""The status page's figures, from the data folder: freshness, synced objects, the latest plan, quarantine,
collisions, failing objects, delta link ages; rendered as HTML with every value escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain_sync.alerts import raise_alert
from domain_sync.ops_settings import OpsSettings
from domain_sync.runs import RunFolder, write_json_atomic
from domain_sync.status import collect, render_html

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
ANA = "aaaaaaaa-0000-0000-0000-000000000001"


def test_the_status_shows_the_latest_sync_runs_figures(tmp_path, settings):
    run = RunFolder(settings.runs_dir, "scheduled__1")
    write_json_atomic(run.quarantine, [{"anchor": ANA, "kind": "user", "rule": "upn_format",
                                        "attribute": "userPrincipalName"}])
    write_json_atomic(run.plan, {"changes": []})
    write_json_atomic(run.collisions, [{"anchor": "b", "kind": "user", "attribute": "sAMAccountName",
                                        "value": "<bob>", "local_dn": "CN=bob,OU=Local"}])
    run.update_summary("plan", {"status": "blocked", "digest": "ab" * 32, "changes": 3, "counts": {"user.delete": 3},
                                "blocked_reasons": ["3 deletes"], "synced_in_domain": {"user": 40, "group": 4},
                                "held_failing": {"count": 1, "anchors": [ANA]}})
    run.update_summary("apply", {"writes": {}, "dry_run": True})
    write_json_atomic(tmp_path / "data" / "alerting" / "watchdog.json",
                      {"last_success": (NOW - timedelta(minutes=50)).isoformat(), "paused": False})
    write_json_atomic(tmp_path / "data" / "alerting" / "failing.json",
                      {ANA: {"runs": 4, "kind": "user", "last_run": "scheduled__1", "op": "modify",
                             "last_error": "LDAP code 19 <refused>", "first_seen": {"at": "2026-05-01T09:00:00+00:00",
                                                                                   "run": "scheduled__0"},
                             "quarantined": {"at": "2026-05-01T10:00:00+00:00", "run": "scheduled__1"}}})
    raise_alert(settings, "objects_quarantined", f"run scheduled__1: 1 object; see {run.path}")
    drift = RunFolder(settings.runs_dir, "domain_drift_check.scheduled__1")  # a drift check is not a sync run
    drift.update_summary("plan", {"status": "clear", "synced_in_domain": {"user": 1}})

    status = collect(settings, OpsSettings(freshness_minutes=30), NOW)
    assert status["freshness"]["minutes_since"] == 50 and status["freshness"]["fresh"] is False
    assert status["synced"]["user"] == 40 and status["plan"]["blocked"] is True
    assert [q["anchor"] for q in status["quarantined"]["objects"]] == [ANA]
    assert status["failing"][ANA]["runs"] == 4 and status["plan"]["held_failing"] == 1

    page = render_html(status)
    assert "STALE" in page and "BLOCKED" in page and ANA in page and "3 deletes" in page
    assert "&lt;bob&gt;" in page and "<bob>" not in page
    assert "1 held by the latest plan" in page and "2026-05-01T09:00:00+00:00" in page and "since run scheduled__1" in page
    assert "LDAP code 19 &lt;refused&gt;" in page
    assert "see &lt;data dir&gt;/runs/scheduled__1" in page and str(tmp_path) not in page


def test_an_empty_data_folder_says_so(settings):
    page = render_html(collect(settings, OpsSettings(), NOW))
    assert "no successful sync yet" in page and "no plan yet" in page and "no saved delta link" in page


def test_synced_objects_after_the_run_count_its_creates_and_deletes():
    from domain_sync.status import after_run

    plan = {"synced_in_domain": {"user": 40, "group": 4}}
    assert after_run(plan, {"writes": {"user.create": 3, "user.delete": 1, "group.create": 1}}) == {"user": 42,
                                                                                                   "group": 5}
    assert after_run(plan, {"dry_run": True, "writes": {}}) == {"user": 40, "group": 4}
    # Objects that failed do not stop the run: its writes count. A stopped apply is not taken as gone through.
    assert after_run(plan, {"writes": {"user.create": 3}, "failed": [{"anchor": "a"}]}) == {"user": 43, "group": 4}
    assert after_run(plan, {"writes": {"user.create": 3}, "stopped": "9 of 44 failed"}) == {"user": 40, "group": 4}
