"""Run-level alerts: raised once per run, whether the report ran or a later teardown does; quarantined
objects and collisions only when new since the last alert; objects failing run after run."""

from __future__ import annotations

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.config import Settings
from domain_sync.ops_settings import OpsSettings
from domain_sync.run_alerts import failing_objects, raise_run_alerts
from domain_sync.runs import RunFolder, write_json_atomic

A, B, C = ("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002",
           "cccccccc-0000-0000-0000-000000000003")


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    return Settings.from_env()


def a_run(settings, run_id, quarantined=(), collisions=(), plan=None, failed=None, **summary):
    run = RunFolder(settings.runs_dir, run_id)
    write_json_atomic(run.quarantine, [{"anchor": a, "kind": "user", "rule": "upn"} for a in quarantined])
    if plan is not None or collisions:
        write_json_atomic(run.plan, {"changes": [], "counts": {}})
        if collisions:
            write_json_atomic(run.collisions, [{"anchor": a, "kind": "user", "attribute": "userPrincipalName",
                                                "value": "x@example.test", "local_dn": "CN=x,OU=Local"}
                                               for a in collisions])
        run.update_summary("plan", plan or {"status": "passed", "collisions": len(collisions)})
    if failed is not None:
        write_json_atomic(run.apply_results, {"dry_run": False, "failed": [
            {"op": "modify", "kind": "user", "anchor": a, "dn": f"CN={a}", "result_code": 19, "message": "constraint"}
            for a in failed]})
    for stage, result in summary.items():
        run.update_summary(stage, result)
    return run


def kinds(settings):
    return [a["kind"] for a in read_alerts(settings)]


def test_quarantine_alerts_only_what_is_new_since_the_last_alert(settings):
    raise_run_alerts(settings, a_run(settings, "r1", quarantined=[A], collisions=[B]))
    raise_run_alerts(settings, a_run(settings, "r2", quarantined=[A], collisions=[B]))
    raise_run_alerts(settings, a_run(settings, "r3", quarantined=[A, C], collisions=[B]))
    alerts = [a for a in read_alerts(settings) if a["kind"] == "objects_quarantined"]
    assert [a["run_id"] for a in alerts] == ["r1", "r3"]
    assert alerts[0]["quarantined"] == [A]
    assert "1 quarantined because another object holds their userPrincipalName" in alerts[0]["message"]
    assert alerts[1]["quarantined"] == [C] and not alerts[1].get("collisions")


def test_collisions_are_named_for_what_they_are_duplicate_anchors_are_no_name_collisions(settings):
    run = a_run(settings, "r1", plan={"status": "passed", "collisions": 3})
    write_json_atomic(run.collisions, [
        {"anchor": A, "kind": "user", "attribute": "mS-DS-ConsistencyGuid", "value": A,
         "local_dn": "CN=Ana,OU=Sync; CN=Ana (copy),OU=Old"},
        {"anchor": B, "kind": "user", "attribute": "sAMAccountName", "value": "bob", "local_dn": "CN=bob,OU=Local"},
        {"anchor": C, "kind": "user", "attribute": "userPrincipalName", "value": "c@x", "local_dn": "CN=c,OU=Local"}])
    raise_run_alerts(settings, run)
    alert = next(a for a in read_alerts(settings) if a["kind"] == "objects_quarantined")
    message = alert["message"]
    assert "1 tenant objects whose anchor is on several synced objects (all of them held, none written)" in message
    assert "1 given another sAMAccountName because a local object holds theirs" in message
    assert "1 quarantined because another object holds their userPrincipalName" in message
    assert "name collisions with local objects" not in message
    assert alert["collisions"][0] == f"{A}: anchor (mS-DS-ConsistencyGuid) on CN=Ana,OU=Sync; CN=Ana (copy),OU=Old"


def test_an_object_back_in_quarantine_is_new_again(settings):
    raise_run_alerts(settings, a_run(settings, "r1", quarantined=[A]))
    raise_run_alerts(settings, a_run(settings, "r2", quarantined=[]))
    raise_run_alerts(settings, a_run(settings, "r3", quarantined=[A]))
    assert [a["run_id"] for a in read_alerts(settings) if a["kind"] == "objects_quarantined"] == ["r1", "r3"]


def test_the_teardown_after_the_report_raises_nothing_twice(settings):
    run = a_run(settings, "r1", quarantined=[A],
                extract_users={"expired_link_recovered": True, "objects": 3})
    first = raise_run_alerts(settings, run)
    again = raise_run_alerts(settings, run)
    assert sorted(first["raised"]) == ["delta_link_expired", "objects_quarantined"] and again["raised"] == []
    assert sorted(kinds(settings)) == ["delta_link_expired", "objects_quarantined"]


def test_a_blocked_plan_alerts_with_its_digest_when_the_plan_task_failed(settings):
    run = a_run(settings, "r1", plan={"failed": "PlanBlocked: the plan was stopped before any write: 600 deletes"})
    raise_run_alerts(settings, run)
    alert = next(a for a in read_alerts(settings) if a["kind"] == "plan_blocked")
    assert "600 deletes" in alert["message"] and alert["run_id"] == "r1"


def test_a_dry_run_reporting_blocked_alerts_too(settings):
    run = a_run(settings, "r1", plan={"status": "blocked", "digest": "ab" * 32, "blocked_reasons": ["too many"]})
    raise_run_alerts(settings, run)
    alert = next(a for a in read_alerts(settings) if a["kind"] == "plan_blocked")
    assert alert["digest"] == "ab" * 32


def test_conditions_of_a_run_that_failed_later_still_alert(settings):
    """Validation quarantined objects, then the plan task failed: the teardown raises the quarantine."""
    run = a_run(settings, "r1", quarantined=[A], validate={"quarantined": {"user": 1}},
                plan={"failed": "DomainUnavailable: server down"})
    assert raise_run_alerts(settings, run)["raised"] == ["objects_quarantined"]


def test_a_garbled_delta_link_alerts(settings):
    run = a_run(settings, "r1", extract_users={"failed": "GraphReadError: the saved delta link is not a valid link"})
    raise_run_alerts(settings, run)
    alert = next(a for a in read_alerts(settings) if a["kind"] == "delta_link_unusable")
    assert "forget_delta_links" in alert["message"]


def test_an_object_failing_for_n_runs_in_a_row_alerts_once(settings):
    ops = OpsSettings(object_failure_runs=3)
    for n in range(1, 6):
        raise_run_alerts(settings, a_run(settings, f"r{n}", failed=[A]), ops)
    alerts = [a for a in read_alerts(settings) if a["kind"] == "object_failing"]
    assert [a["run_id"] for a in alerts] == ["r3"] and alerts[0]["anchor"] == A
    assert failing_objects(settings)[A]["runs"] == 5


def test_a_success_between_failures_starts_the_count_again(settings):
    ops = OpsSettings(object_failure_runs=3)
    for n, failed in enumerate([[A], [A], [], [A], [A]], start=1):
        raise_run_alerts(settings, a_run(settings, f"r{n}", failed=failed), ops)
    assert not [a for a in read_alerts(settings) if a["kind"] == "object_failing"]
    assert failing_objects(settings)[A]["runs"] == 2
