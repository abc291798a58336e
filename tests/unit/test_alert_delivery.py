"""Alerts reach people: a mail on a local SMTP server (aiosmtpd) through Airflow's SMTP provider, and a JSON
POST on a local HTTP server; a failed task's alert names the DAG, task, try, the error, the counts and the log."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from domain_sync.alerts import raise_alert, read_alerts
from domain_sync.notifiers import TaskFailureAlert
from domain_sync.runs import RunFolder


@pytest.fixture
def settings(settings, monkeypatch):
    """The shared settings; mail and webhooks go to local servers, never through a proxy."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return settings


def mail_to_local_server(monkeypatch, port):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "sync@example.test"}}))
    monkeypatch.setenv("DOMAIN_SYNC_ALERT_EMAIL_TO", "ops@example.test,oncall@example.test")


def failure_context(run_id="scheduled__2026-01-02T00:05:00+00:00"):
    ti = SimpleNamespace(dag_id="tenant_to_domain_sync", task_id="apply", try_number=3,
                         log_url="http://airflow.example.test/dags/tenant_to_domain_sync/runs/x/tasks/apply?try_number=3")
    return {"ti": ti, "run_id": run_id,
            "exception": RuntimeError("LDAP server down: 127.0.0.18:636\nTraceback (most recent call last): ...")}


def test_a_failed_task_mails_the_dag_task_try_error_counts_and_log_link(settings, smtp_inbox, monkeypatch):
    port, inbox = smtp_inbox
    mail_to_local_server(monkeypatch, port)
    run_id = "scheduled__2026-01-02T00:05:00+00:00"
    RunFolder(settings.runs_dir, run_id).update_summary("plan", {"changes": 7, "status": "passed"})

    TaskFailureAlert().notify(failure_context(run_id))

    assert len(inbox.messages) == 1
    (sender, recipients), message = inbox.envelopes[0], inbox.messages[0]
    assert sender == "sync@example.test" and recipients == ["ops@example.test", "oncall@example.test"]
    assert "task_failed" in message["Subject"] and "tenant_to_domain_sync.apply" in message["Subject"]
    body = message.get_body(("html", "plain")).get_content()
    for text in ("tenant_to_domain_sync", "apply", "try 3", "LDAP server down: 127.0.0.18:636",
                 "planned_changes", "http://airflow.example.test/dags/tenant_to_domain_sync/runs/x/tasks/apply"):
        assert text in body, text
    assert "Traceback" not in body  # the error in one line
    alert = read_alerts(settings)[-1]
    assert alert["try_number"] == 3 and alert["counts"]["planned_changes"] == 7


def test_a_run_level_alert_reaches_mail_and_webhook(settings, smtp_inbox, webhook_sink, monkeypatch):
    port, inbox = smtp_inbox
    hook_port, received = webhook_sink
    mail_to_local_server(monkeypatch, port)
    monkeypatch.setenv("DOMAIN_SYNC_ALERT_CHANNELS", "smtp,webhook")
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": hook_port, "schema": "http",
        "extra": {"endpoint": "/hooks/domain-sync"}}))

    raise_alert(settings, "objects_quarantined", "run r1: 2 objects quarantined by validation", run_id="r1")

    assert inbox.subjects() == [
        "[domain-sync] objects_quarantined: run r1: 2 objects quarantined by validation"]
    assert len(received) == 1
    assert received[0]["text"].startswith("objects_quarantined: run r1: 2 objects quarantined")
    assert received[0]["alert"]["kind"] == "objects_quarantined" and received[0]["alert"]["run_id"] == "r1"


def test_a_mail_server_away_never_fails_the_alert(settings, monkeypatch):
    mail_to_local_server(monkeypatch, 9)  # nothing listens on the discard port
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": 9,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "s@example.test", "retry_limit": 0,
                  "timeout": 2}}))
    from domain_sync.delivery import deliver

    outcome = deliver({"kind": "test", "message": "m", "at": "now"})
    assert outcome["smtp"].startswith("failed")


def test_no_recipient_no_mail_and_no_channel_nothing(settings, monkeypatch):
    from domain_sync.delivery import deliver

    assert deliver({"kind": "test", "message": "m"})["smtp"].startswith("skipped")
    monkeypatch.setenv("DOMAIN_SYNC_ALERT_CHANNELS", "")
    assert deliver({"kind": "test", "message": "m"}) == {}


def test_an_unknown_channel_is_a_settings_error():
    from domain_sync.config import SettingsError
    from domain_sync.ops_settings import OpsSettings

    with pytest.raises(SettingsError, match="DOMAIN_SYNC_ALERT_CHANNELS"):
        OpsSettings.from_env({"DOMAIN_SYNC_ALERT_CHANNELS": "smtp,pager"})


def test_a_silenced_kind_is_logged_but_not_delivered_until_its_time(settings, smtp_inbox, monkeypatch):
    from datetime import UTC, datetime, timedelta

    port, inbox = smtp_inbox
    mail_to_local_server(monkeypatch, port)
    until = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%MZ")
    monkeypatch.setenv("DOMAIN_SYNC_ALERT_SILENCE", f"sync_paused, sync_stale@{until}")

    raise_alert(settings, "sync_paused", "the sync DAG is paused")
    raise_alert(settings, "sync_stale", "no success for 45 minutes")
    raise_alert(settings, "plan_blocked", "run r1: the plan was stopped")

    assert [s.split(":")[0] for s in inbox.subjects()] == ["[domain-sync] plan_blocked"]
    assert [a["kind"] for a in read_alerts(settings)] == ["sync_paused", "sync_stale", "plan_blocked"]

    monkeypatch.setenv("DOMAIN_SYNC_ALERT_SILENCE", "*@2000-01-01T00:00Z")  # a window that is over
    raise_alert(settings, "sync_stale", "no success for 50 minutes")
    assert len(inbox.messages) == 2


def test_a_maintenance_window_silences_every_kind():
    from datetime import UTC, datetime

    from domain_sync.ops_settings import OpsSettings

    ops = OpsSettings.from_env({"DOMAIN_SYNC_ALERT_SILENCE": "*@2026-12-07T06:00Z"})
    assert ops.silenced_until("task_failed", datetime(2026, 12, 7, 5, 59, tzinfo=UTC))
    assert ops.silenced_until("task_failed", datetime(2026, 12, 7, 6, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize("value", ["sync stale", "sync_stale@tomorrow", "@2026-12-07"])
def test_a_silence_that_does_not_parse_names_the_setting_and_silences_nothing(value, caplog):
    from domain_sync.config import SettingsError
    from domain_sync.ops_settings import OpsSettings

    ops = OpsSettings.from_env({"DOMAIN_SYNC_ALERT_SILENCE": value})  # the DAGs that read it still parse
    with pytest.raises(SettingsError, match="DOMAIN_SYNC_ALERT_SILENCE"):
        ops.silences()
    assert ops.silenced_until("sync_stale") is None
    assert "DOMAIN_SYNC_ALERT_SILENCE" in caplog.text and "every alert is delivered" in caplog.text
