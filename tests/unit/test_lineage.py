"""Each stage's lineage: the tenant's and the domain's datasets with row counts, validation as data-quality
assertions, and OpenLineage datasets built from them."""

from __future__ import annotations

from domain_sync.config import Settings
from domain_sync.lineage import openlineage_facets, stage_datasets
from domain_sync.runs import RunFolder, write_json_atomic


def a_run(tmp_path) -> RunFolder:
    return RunFolder(Settings(data_dir=str(tmp_path)).runs_dir, "r1")


def test_extract_reads_the_tenant_and_stages_the_rows(tmp_path):
    inputs, outputs = stage_datasets("extract_users", {"objects": 12}, a_run(tmp_path))
    assert [(d.namespace, d.name, d.rows) for d in inputs] == [("x-msgraph://tenant", "users", 12)]
    assert [(d.name, d.rows) for d in outputs] == [("extract/users.parquet", 12)]


def test_validation_results_are_data_quality_assertions(tmp_path):
    run = a_run(tmp_path)
    write_json_atomic(run.validation_report, {"suites": {
        "user_records": {"kind": "user", "expectations": [
            {"expectation": "expect_column_values_to_be_unique", "column": "account_name", "success": False}]},
        "group_records": {"kind": "group", "expectations": []}}})
    inputs, outputs = stage_datasets("validate", {"checked": {"user": 5, "group": 2},
                                                  "quarantined": {"user": 1, "group": 0}}, run)
    users = inputs[0]
    assert users.rows == 5
    assert users.assertions == [("user_records.expect_column_values_to_be_unique", False, "account_name")]
    assert outputs[0].rows == 1


def test_apply_writes_the_domains_users_and_groups_but_a_dry_run_nothing(tmp_path):
    result = {"writes": {"user.create": 3, "user.modify": 1, "group.add_members": 4}, "planned": 8}
    _, outputs = stage_datasets("apply", result, a_run(tmp_path))
    assert [(d.namespace, d.name, d.rows) for d in outputs] == [("x-ldap://domain", "users", 4),
                                                                ("x-ldap://domain", "groups", 4)]
    assert stage_datasets("apply", {"dry_run": True}, a_run(tmp_path))[1] == []


def test_openlineage_datasets_carry_statistics_and_assertions(tmp_path):
    run = a_run(tmp_path)
    write_json_atomic(run.validation_report, {"suites": {"user_records": {"kind": "user", "expectations": [
        {"expectation": "expect_column_values_to_not_be_null", "column": "anchor", "success": True}]}}})
    lineage = openlineage_facets("validate", {"checked": {"user": 5, "group": 0}, "quarantined": {}}, run)
    users = lineage.inputs[0]
    assert users.inputFacets["inputStatistics"].rowCount == 5
    assert users.facets["dataQualityAssertions"].assertions[0].assertion.endswith("expect_column_values_to_not_be_null")
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == 0


def test_apply_records_events_only_for_the_kinds_it_wrote():
    from domain_sync.lineage import DOMAIN_GROUPS, DOMAIN_USERS, written_assets

    assert written_assets({"writes": {"user.create": 2, "user.modify": 1}}) == {DOMAIN_USERS: 3}
    assert written_assets({"writes": {"group.add_members": 4, "user.modify": 1}}) == {DOMAIN_USERS: 1,
                                                                                      DOMAIN_GROUPS: 4}
    assert written_assets({"dry_run": True, "writes": {"user.create": 2}}) == {}
