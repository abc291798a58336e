"""The drift report classifies a dry-run plan: changed by hand, missing, not in the tenant, collisions."""

from __future__ import annotations

from domain_sync.alerts import read_alerts
from domain_sync.context import StageContext
from domain_sync.drift import classify, corrected_drift, drift_files, run
from domain_sync.plan.observed import ObservedDomain, ObservedObject
from domain_sync.plan.stage import drift_of_round
from domain_sync.records import Change, ChangeSet, Op
from domain_sync.runs import RunFolder, read_json, write_json_atomic

U1, U2, U3, G1 = ("11111111-0000-0000-0000-000000000001", "22222222-0000-0000-0000-000000000002",
                  "33333333-0000-0000-0000-000000000003", "44444444-0000-0000-0000-000000000004")
PLAN = {"status": "passed", "counts": {}, "changes": [
    {"op": "create_container", "kind": "container", "dn": "OU=Sync,DC=corp"},
    {"op": "modify", "kind": "user", "anchor": U1, "dn": "CN=Ana,OU=Sync", "values": {"title": ["Boss"]}},
    {"op": "rename", "kind": "user", "anchor": U1, "dn": "CN=Ana,OU=Sync", "new_dn": "CN=Ana Lima,OU=Sync"},
    {"op": "create", "kind": "user", "anchor": U2, "dn": "CN=Bob,OU=Sync", "values": {"cn": ["Bob"]}},
    {"op": "delete", "kind": "user", "anchor": U3, "dn": "CN=Old,OU=Sync"},
    {"op": "add_members", "kind": "group", "anchor": G1, "dn": "CN=Staff,OU=Sync", "members": ["CN=Bob,OU=Sync"]},
]}


def test_changes_are_sorted_into_drift_categories():
    report = classify(PLAN, [{"anchor": U2, "kind": "user", "attribute": "userPrincipalName", "value": "b@x",
                              "local_dn": "CN=b,OU=Local"}])
    assert [e["anchor"] for e in report["changed_in_domain"]] == [U1]
    assert report["changed_in_domain"][0]["what"] == ["title", "name/place -> CN=Ana Lima,OU=Sync"]
    assert [e["anchor"] for e in report["missing_in_domain"]] == [U2]
    assert [e["anchor"] for e in report["not_in_tenant"]] == [U3]
    assert [e["anchor"] for e in report["memberships_changed"]] == [G1]
    assert report["collisions"][0]["what"] == ["userPrincipalName 'b@x' held by CN=b,OU=Local"]


def test_a_sync_run_counts_as_drift_only_changes_to_objects_its_round_did_not_bring():
    # The round brought U2 (new in the tenant) and U3 (deleted there); U1 and G1 changed in the domain alone.
    assert corrected_drift(PLAN["changes"], {U2, U3}) == {"changed_in_domain": 1, "memberships_changed": 1}
    assert corrected_drift(PLAN["changes"], {U1.upper().lower(), U2, U3, G1}) == {}


U4, U5, G2 = ("55555555-0000-0000-0000-000000000005", "66666666-0000-0000-0000-000000000006",
              "77777777-0000-0000-0000-000000000007")
GUID5, GUID6 = "aaaaaaaa-0000-0000-0000-000000000005", "aaaaaaaa-0000-0000-0000-000000000006"
# U4 enters scope (a scope group's membership changed) and is created and added to G2; U5 leaves scope and is
# disabled and taken out of G2; U1 was taken out of G2 by hand and is put back.
SCOPE_PLAN = ChangeSet([
    Change(Op.CREATE, "user", U4, "CN=Dan,OU=Sync,DC=corp", values={"cn": ["Dan"]}),
    Change(Op.ADD_MEMBERS, "group", G2, "CN=Team,OU=Sync,DC=corp", members=["cn=dan,ou=sync,dc=corp",
                                                                           f"<GUID={GUID6}>"], guid=GUID5),
    Change(Op.REMOVE_MEMBERS, "group", G2, "CN=Team,OU=Sync,DC=corp", members=[f"<GUID={GUID5.upper()}>"]),
    Change(Op.DISABLE, "user", U5, "CN=Eve,OU=Sync,DC=corp", values={"userAccountControl": ["514"]}, guid=GUID5),
], {})


def test_objects_entering_or_leaving_scope_and_their_memberships_are_no_drift(tmp_path):
    changes = SCOPE_PLAN.to_json()["changes"]
    assert corrected_drift(changes, set()) == {"memberships_changed": 1, "missing_in_domain": 1, "to_disable": 1}
    members = {"cn=dan,ou=sync,dc=corp", f"<guid={GUID5}>"}
    assert corrected_drift(changes, set(), {U4, U5}, members) == {"memberships_changed": 1}  # U1 put back
    assert corrected_drift(changes, set(), {U4, U5}, members | {f"<guid={GUID6}>"}) == {}
    # The plan stage names them from transform's records notes and the observed domain.
    run_folder = RunFolder(tmp_path, "r1")
    for resource, link in (("users", "u"), ("groups", "g")):
        write_json_atomic(run_folder.delta_link(resource), {"link": link, "full_read": False})
    write_json_atomic(run_folder.records_notes, {"users_out_of_scope": [], "scope_changed": [U4.upper(), U5]})
    eve = ObservedObject(U5, "user", "CN=Eve,OU=Sync,DC=corp", {}, guid=GUID5)
    observed = ObservedDomain("OU=Sync,DC=corp", [], {U5: eve}, {}, {}, set())
    notes = read_json(run_folder.records_notes)
    planned = [Change.from_json(c) for c in changes]  # the plan stage passes its change set
    assert drift_of_round(run_folder, planned, observed, set(), notes) == {"memberships_changed": 1}
    old_notes = {"users_out_of_scope": []}  # a transform from before the notes
    assert drift_of_round(run_folder, planned, observed, set(), old_notes) == {
        "memberships_changed": 1, "missing_in_domain": 1, "to_disable": 1}


def test_the_drift_stage_writes_its_report_and_alerts(settings):
    ctx = StageContext.offline(settings, "drift-1")
    write_json_atomic(ctx.run.plan, PLAN)
    result = run(ctx)
    assert result["counts"] == {"changed_in_domain": 1, "memberships_changed": 1, "missing_in_domain": 1,
                                "not_in_tenant": 1, "to_disable": 0, "collisions": 0}
    text = drift_files(ctx.run)[1].read_text()
    assert "changed_in_domain: 1" in text and U1 in text
    assert [a["kind"] for a in read_alerts(ctx.settings)] == ["drift_found"]


def test_no_drift_no_alert(settings):
    ctx = StageContext.offline(settings, "drift-2")
    write_json_atomic(ctx.run.plan, {"status": "passed", "counts": {}, "changes": []})
    assert run(ctx)["drift"] == 0 and read_alerts(ctx.settings) == []
