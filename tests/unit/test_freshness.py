"""The watchdog alerts when the sync has not succeeded for the freshness window, or is paused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain_sync.alerts import read_alerts
from domain_sync.freshness import check_freshness
from domain_sync.ops_settings import OpsSettings
from tests.fixtures.builders import alert_kinds

T0 = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
OPS = OpsSettings(freshness_minutes=30)


def view(successes, paused=False):
    return lambda: {"paused": paused, "successes": successes, "next_run": None}


def test_runs_that_keep_succeeding_raise_nothing(settings):
    for n in range(12):
        check_freshness(settings, OPS, view(n), T0 + timedelta(minutes=5 * n))
    assert alert_kinds(settings) == []


def test_no_success_for_longer_than_the_window_alerts_once_per_window(settings):
    check_freshness(settings, OPS, view(4), T0)
    check_freshness(settings, OPS, view(5), T0 + timedelta(minutes=5))  # the last success
    for minutes in range(10, 100, 5):  # runs fail, hang or are not scheduled: the count stays
        check_freshness(settings, OPS, view(5), T0 + timedelta(minutes=minutes))
    alerts = [a for a in read_alerts(settings) if a["kind"] == "sync_stale"]
    assert len(alerts) == 2  # after 35 minutes, and one window later
    assert "has not succeeded for 35 minutes" in alerts[0]["message"]
    result = check_freshness(settings, OPS, view(6), T0 + timedelta(minutes=100))
    assert result["stale"] is False and alert_kinds(settings)[-1] == "sync_fresh_again"


def test_a_paused_sync_alerts_at_once(settings):
    result = check_freshness(settings, OPS, view(3, paused=True), T0)
    assert result["raised"] == ["sync_paused"] and alert_kinds(settings) == ["sync_paused"]


def test_a_recent_commit_counts_as_a_success(settings, monkeypatch):
    import domain_sync.freshness as freshness

    check_freshness(settings, OPS, view(0), T0)
    monkeypatch.setattr(freshness, "last_commit", lambda s: T0 + timedelta(minutes=40))
    assert check_freshness(settings, OPS, view(0), T0 + timedelta(minutes=45))["stale"] is False
    assert alert_kinds(settings) == []
