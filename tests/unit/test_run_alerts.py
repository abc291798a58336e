"""Run-level alerts: raised once per run, whether the report ran or a later teardown does; quarantined
objects and collisions only when new since the last alert; objects failing run after run."""

from __future__ import annotations

from domain_sync.alerts import read_alerts
from domain_sync.failing import HELD_KEY, failing_objects
from domain_sync.ops_settings import OpsSettings
from domain_sync.run_alerts import raise_run_alerts
from domain_sync.runs import RunFolder, write_json_atomic
from tests.fixtures.builders import alert_kinds as kinds

A, B, C = ("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002",
           "cccccccc-0000-0000-0000-000000000003")


def a_run(settings, run_id, quarantined=(), collisions=(), plan=None, failed=None, held=(), **summary):
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
        if plan is None and not collisions:
            write_json_atomic(run.plan, {"changes": [], "counts": {}, HELD_KEY: list(held)})
        write_json_atomic(run.apply_results, {"dry_run": False, "failed": [
            {"op": "modify", "kind": "user", "anchor": a, "dn": f"CN={a}", "result_code": 19, "message": "constraint"}
            for a in failed]})
    for stage, result in summary.items():
        run.update_summary(stage, result)
    return run


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
    write_json_atomic(run.plan, {"changes": [], "blocked_reasons": ["600 user deletes (limit 500)"],
                                 "digest": "cd" * 32, "status": "blocked"})
    raise_run_alerts(settings, run)
    alert = next(a for a in read_alerts(settings) if a["kind"] == "plan_blocked")
    assert "600 user deletes (limit 500)" in alert["message"] and alert["run_id"] == "r1"
    assert alert["digest"] == "cd" * 32 and f"approve_plan={'cd' * 32}" in alert["message"]
    assert alert["message"].count("stopped before any write") == 1


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


REFUSED = "tenant connection 'tenant': Graph refused the saved groups delta link (HTTP 400 Request_BadRequest: malformed)"


def test_a_saved_link_graph_refused_alerts_once_naming_the_resource_and_what_happened(settings):
    run = a_run(settings, "r1", extract_users={"full_read": False, "objects": 0},
                extract_groups={"full_read": True, "unusable_link_recovered": True, "saved_link_problem": REFUSED})
    assert raise_run_alerts(settings, run)["raised"] == ["delta_link_unusable"]
    assert raise_run_alerts(settings, run)["raised"] == []
    alerts = [a for a in read_alerts(settings) if a["kind"] == "delta_link_unusable"]
    assert len(alerts) == 1 and alerts[0]["resource"] == "groups" and alerts[0]["run_id"] == "r1"
    assert REFUSED in alerts[0]["message"] and "read every group instead" in alerts[0]["message"]
    assert str(settings.state_dir) in alerts[0]["message"], "where to look"


def test_failure_text_that_mentions_a_delta_link_raises_no_link_alert(settings):
    """A failed extract alerts as a failed task (notifiers.TaskFailureAlert), not by the words of its error."""
    run = a_run(settings, "r1", extract_users={"failed": "GraphRequestRejected: the delta link page had no link"})
    assert raise_run_alerts(settings, run)["raised"] == []


def test_the_summary_says_how_each_resource_was_read_and_why_in_full():
    from domain_sync.summary import format_summary

    text = format_summary({"run_id": "r1", "extract_users": {"full_read": False, "objects": 2},
                           "extract_groups": {"full_read": True, "objects": 7, "unusable_link_recovered": True}})
    assert "users extract: 2 objects (delta round)" in text
    assert "groups extract: 7 objects (full read, Graph refused the saved delta link)" in text
    expired = format_summary({"extract_users": {"full_read": True, "objects": 9, "expired_link_recovered": True}})
    assert "users extract: 9 objects (full read, the saved delta link had expired)" in expired


def test_an_object_failing_for_n_runs_in_a_row_is_quarantined_with_an_alert_saying_how_it_is_released(settings):
    ops = OpsSettings(object_failure_runs=3)
    for n in range(1, 4):
        raise_run_alerts(settings, a_run(settings, f"r{n}", failed=[A]), ops)
    for n in range(4, 6):  # held by the plan: not written, no new alert
        raise_run_alerts(settings, a_run(settings, f"r{n}", failed=[], held=[A]), ops)
    alerts = [a for a in read_alerts(settings) if a["kind"] == "object_failing"]
    assert [a["run_id"] for a in alerts] == ["r3"] and alerts[0]["anchor"] == A
    assert "failed in 3 runs in a row" in alerts[0]["message"] and "(run r1)" in alerts[0]["message"]
    assert "quarantined" in alerts[0]["message"] and "full resync" in alerts[0]["message"]
    assert failing_objects(settings)[A]["runs"] == 3 and failing_objects(settings)[A]["quarantined"]["run"] == "r3"
    raise_run_alerts(settings, a_run(settings, "r6", failed=[A]), ops)  # released, failed again: quarantined again
    assert [a["run_id"] for a in read_alerts(settings) if a["kind"] == "object_failing"] == ["r3", "r6"]


def test_a_success_between_failures_starts_the_count_again(settings):
    ops = OpsSettings(object_failure_runs=3)
    for n, failed in enumerate([[A], [A], [], [A], [A]], start=1):
        raise_run_alerts(settings, a_run(settings, f"r{n}", failed=failed), ops)
    assert not [a for a in read_alerts(settings) if a["kind"] == "object_failing"]
    assert failing_objects(settings)[A]["runs"] == 2
