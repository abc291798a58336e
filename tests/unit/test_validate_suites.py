"""The validate stage on run folders built by hand: quarantine per object, systemic stops, reports."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.naming import common_names_among
from domain_sync.records import FIELDS, MEMBER_COLUMNS, REMOVED, attr_column
from domain_sync.runs import RunFolder, write_json_atomic
from domain_sync.state import StateStore
from domain_sync.transform import stage as transform_stage
from domain_sync.validate import stage as validate_stage
from domain_sync.validate.suites import SystemicValidationError, Validator, validate_names, validate_records

USER_COLUMNS = ["id", "displayName", "mailNickname", "userPrincipalName", "accountEnabled", "department"]


def user(n: int, **extra) -> dict:
    row = {"id": str(uuid.UUID(int=n + 1)), "displayName": f"User {n}", "mailNickname": f"user{n}",
           "userPrincipalName": f"user{n}@contoso.example", "accountEnabled": True, "department": "Ops"}
    row.update(extra)
    return row


def write_round(settings: Settings, run_id: str, users: list[dict], groups: list[dict] | None = None,
                members: list[tuple] | None = None, full: bool = True) -> RunFolder:
    run = RunFolder(settings.runs_dir, run_id)
    frame = pd.DataFrame(users)
    frame[REMOVED] = None
    frame[FIELDS] = ",".join(c for c in frame.columns if c not in ("id", REMOVED, FIELDS))
    frame.to_parquet(run.staged("users"), index=False)
    groups_frame = pd.DataFrame(groups or [], columns=["id", "displayName", "securityEnabled"])
    groups_frame[REMOVED] = None
    groups_frame[FIELDS] = "displayName,securityEnabled"
    groups_frame.to_parquet(run.staged("groups"), index=False)
    pd.DataFrame([(g, m, "user", False) for g, m in members or []], columns=MEMBER_COLUMNS).to_parquet(
        run.staged("members"), index=False)
    for r in ("users", "groups"):
        write_json_atomic(run.delta_link(r), {"link": f"test://{r}", "full_read": full})
    write_json_atomic(run.state_read, {"version": StateStore(settings.state_dir).version()})  # as extract records it
    return run


def transform_run(settings: Settings, run: RunFolder) -> dict:
    return transform_stage.run(StageContext(settings, run, endpoint_factory=lambda s: None))


def validate_run(settings: Settings, run: RunFolder) -> dict:
    return validate_stage.run(StageContext(settings, run))


def test_two_percent_malformed_users_are_quarantined_exactly_and_the_run_goes_on(settings):
    users = [user(n) for n in range(100)]
    users[3]["userPrincipalName"] = None
    users[7]["userPrincipalName"] = "not-an-address"
    run = write_round(settings, "r1", users)
    transform_run(settings, run)
    summary = validate_run(settings, run)
    assert summary["quarantined"] == {"user": 2, "group": 0}
    quarantine = json.loads(run.quarantine.read_text())
    assert {q["anchor"] for q in quarantine} == {users[3]["id"], users[7]["id"]}
    assert all(set(q) == {"anchor", "kind", "attribute", "rule", "value_shape", "suite"} for q in quarantine)
    text = run.validation_report_text.read_text()
    assert "result: passed" in text and "2 of 100 users" in text
    assert "FAIL expect_column_values_to_match_regex(userPrincipalName)" in text


def test_twenty_percent_malformed_stops_the_run_and_says_why(settings):
    users = [user(n) for n in range(100)]
    for n in range(0, 100, 5):
        users[n]["userPrincipalName"] = f"broken {n}"
    run = write_round(settings, "r1", users)
    transform_run(settings, run)
    with pytest.raises(SystemicValidationError) as err:
        validate_run(settings, run)
    assert "20 of 100 users (20.0%) fail validation, more than the limit of 5%" in str(err.value)
    assert "STOPPED before any write" in run.validation_report_text.read_text()


@pytest.mark.parametrize("one, other", [("Same@contoso.example", "same@CONTOSO.example"),
                                        ("Jürgen@contoso.example", "jurgen@contoso.example")])
def test_userprincipalnames_equal_as_windows_ad_compares_them_quarantine_both_users(settings, one, other):
    users = [user(n) for n in range(40)]
    users[1]["userPrincipalName"] = one
    users[2]["userPrincipalName"] = other
    run = write_round(settings, "r1", users)
    transform_run(settings, run)
    validate_run(settings, run)
    quarantine = json.loads(run.quarantine.read_text())
    assert {q["anchor"] for q in quarantine} == {users[1]["id"], users[2]["id"]}
    assert {q["rule"] for q in quarantine} == {"expect_column_values_to_be_unique"}


def test_object_ids_that_are_not_guids_are_quarantined(settings):
    users = [user(n) for n in range(40)]
    users[5]["id"] = "not-a-guid"
    run = write_round(settings, "r1", users)
    transform_run(settings, run)
    assert validate_run(settings, run)["quarantined"]["user"] == 1


def test_a_missing_required_column_in_the_staged_data_is_systemic(settings):
    users = [{k: v for k, v in user(n).items() if k != "userPrincipalName"} for n in range(30)]
    run = write_round(settings, "r1", users)
    transform_run(settings, run)
    with pytest.raises(SystemicValidationError, match=r"staged_users: required columns \['userPrincipalName'\]"):
        validate_run(settings, run)


def test_staged_rows_without_an_id_are_counted_and_ignored(settings):
    users = [user(n) for n in range(40)] + [user(99, id=None)]
    run = write_round(settings, "r1", users)
    assert transform_run(settings, run)["staged_rows_without_id"]["user"] == 1
    summary = validate_run(settings, run)
    assert summary["unidentified_staged_rows"] == 1 and summary["checked"]["user"] == 40


def test_a_full_read_much_smaller_than_the_previous_snapshot_is_systemic(settings):
    run = write_round(settings, "r1", [user(n) for n in range(100)])
    transform_run(settings, run)
    validate_run(settings, run)
    StateStore(settings.state_dir).commit(run.snapshot_dir, {"users": "l1", "groups": "l1"})
    run = write_round(settings, "r2", [user(n) for n in range(60)])
    transform_run(settings, run)
    with pytest.raises(SystemicValidationError, match="full read returned 60 users, fewer than 80% of the 100"):
        validate_run(settings, run)
    run = write_round(settings, "r3", [user(n) for n in range(90)])
    transform_run(settings, run)
    assert validate_run(settings, run)["counts"]["user"] == {"full_read": True, "now": 90, "previous": 100}


def test_memberships_to_quarantined_objects_are_counted(settings):
    users = [user(n) for n in range(40)]
    users[0]["userPrincipalName"] = "broken"
    group = {"id": str(uuid.UUID(int=999)), "displayName": "Team", "securityEnabled": True}
    run = write_round(settings, "r1", users, [group], [(group["id"], users[0]["id"]), (group["id"], users[1]["id"]),
                                                       (group["id"], "device-not-a-user")])
    transform_run(settings, run)
    summary = validate_run(settings, run)
    assert summary["memberships_dropped"] == {"to_quarantined_object": 1, "unknown_object": 1, "out_of_scope": 0,
                                            "not_user_or_group": 0}
    assert "1 to quarantined object" in run.validation_report_text.read_text()


def records(*rows):
    base = {"kind": "user", "account_name": "a", "enabled": True, attr_column("userPrincipalName"): None}
    return pd.DataFrame([base | r for r in rows])


def test_values_over_their_schema_length_quarantine_the_object():
    frame = records({"anchor": "a1", "cn": "x", attr_column("userPrincipalName"): "a@x.test",
                     attr_column("employeeID"): "😀" * 9},
                    {"anchor": "a2", "cn": "y", attr_column("userPrincipalName"): "b@x.test",
                     attr_column("employeeID"): "😀" * 8})
    outcome = validate_records(Validator(), "user", frame, {attr_column("employeeID"): 16})
    assert [(q.anchor, q.attribute) for q in outcome.quarantine] == [("a1", "employeeID")]


def test_objects_whose_container_names_would_collide_are_quarantined():
    # A user and a group under one id (a tenant that breaks Graph's own rule): one cn for two objects.
    users = records({"anchor": "77777777-0000-0000-0000-000000000004", "cn": "Sam"},
                    {"anchor": "99999999-0000-0000-0000-000000000003", "cn": "Sam"})
    groups = pd.DataFrame([{"anchor": "77777777-0000-0000-0000-000000000004", "kind": "group", "cn": "Sam"}])
    outcome = validate_names(Validator(), users, groups)
    assert {q.anchor for q in outcome.quarantine} == {"77777777-0000-0000-0000-000000000004"}


def test_anchors_whose_hex_digits_are_all_equal_take_counted_forms():
    # The first takes the 8 digits, the second all of them, the third all of them and a counter.
    users = records({"anchor": "emp-x-1234567890ab", "cn": "Sam"},
                    {"anchor": "emp-y-1234567890ab", "cn": "SAM"},
                    {"anchor": "emp-z-1234567890ab", "cn": "sam"},
                    {"anchor": "99999999-0000-0000-0000-000000000003", "cn": "Sam"})
    groups = pd.DataFrame([{"anchor": "77777777-0000-0000-0000-000000000004", "kind": "group", "cn": "Other"}])
    assert validate_names(Validator(), users, groups).quarantine == []
    assert common_names_among(list(users["anchor"]), list(users["cn"]))[:3] == [
        "Sam (e1234567)", "SAM (e1234567890ab)", "sam (e1234567890ab-2)"]


def test_ids_alike_in_their_first_8_hex_digits_get_their_whole_id_as_suffix():
    # Same display name and the same first 8 hex digits of the id; one object named as another's suffixed cn.
    users = records({"anchor": "abcdef12-0000-0000-0000-000000000001", "cn": "Sam"},
                    {"anchor": "abcdef12-0000-0000-0000-000000000002", "cn": "SAM"},
                    {"anchor": "99999999-0000-0000-0000-000000000003", "cn": "Sam (99999999)"},
                    {"anchor": "99999999-0000-0000-0000-000000000005", "cn": "Sam"})
    groups = pd.DataFrame([{"anchor": "77777777-0000-0000-0000-000000000004", "kind": "group", "cn": "Other"}])
    assert validate_names(Validator(), users, groups).quarantine == []
    names = common_names_among(list(users["anchor"]), list(users["cn"]))
    assert names == ["Sam (abcdef12)", "SAM (abcdef12000000000000000000000002)", "Sam (99999999)",
                     "Sam (99999999000000000000000000000005)"]


def test_a_scoped_full_resync_without_tenant_changes_is_no_broken_read(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "data"), scope_groups="Team")
    users = [user(n) for n in range(100)]
    team = {"id": str(uuid.UUID(int=999)), "displayName": "Team", "securityEnabled": True}
    members = [(team["id"], u["id"]) for u in users[:10]]
    run = write_round(settings, "r1", users, [team], members)
    transform_run(settings, run)
    validate_run(settings, run)
    StateStore(settings.state_dir).commit(run.snapshot_dir, {"users": "l1", "groups": "l1"})
    run = write_round(settings, "r2", users, [team], members)  # the same tenant, read in full again
    transform_run(settings, run)
    summary = validate_run(settings, run)
    assert summary["counts"]["user"] == {"full_read": True, "now": 100, "previous": 100}
