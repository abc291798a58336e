"""The DAG itself, run with dag.test() on the bundled demo tenant into the real Samba DC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.sync_env import run_dag_test

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEMO_TENANT = Path(__file__).resolve().parents[2] / "emulator" / "tenants" / "demo.json"


def test_demo_tenant_syncs_through_the_dag_and_a_rerun_writes_nothing(sync_env, airflow_db):
    tenant = json.loads(DEMO_TENANT.read_text(encoding="utf-8"))
    sync_env.start_tenant(DEMO_TENANT)

    run = run_dag_test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
    entries = sync_env.synced_entries(["sAMAccountName", "objectClass", "member", "userPrincipalName"])
    users = [e for e in entries.values() if "group" not in [c.lower() for c in e["objectclass"]]]
    groups = [e for e in entries.values() if "group" in [c.lower() for c in e["objectclass"]]]
    assert len(users) == len(tenant["users"]) and len(groups) == len(tenant["groups"])
    upns = {e["userprincipalname"][0] if isinstance(e["userprincipalname"], list) else e["userprincipalname"]
            for e in users}
    assert upns == {u["userPrincipalName"] for u in tenant["users"]}
    tenant_members = sum(len(g.get("members", [])) for g in tenant["groups"])
    assert sum(len(e.get("member", [])) for e in groups) == tenant_members

    usn = sync_env.highest_usn()
    again = run_dag_test()
    assert str(again.state) in ("success", "DagRunState.SUCCESS")
    assert sync_env.highest_usn() == usn


def domain_asset_events(run_id: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                 .filter(AssetModel.uri == "x-ldap://domain/synced-objects", AssetEvent.source_run_id == run_id))
        return [(e.source_task_id, e.extra) for e in query]


def test_only_a_sync_that_wrote_records_an_event_on_the_domain_asset(sync_env, airflow_db):
    sync_env.start_tenant(DEMO_TENANT)
    dry = run_dag_test({"dry_run": True})
    assert str(dry.state) in ("success", "DagRunState.SUCCESS"), dry.state
    assert domain_asset_events(dry.run_id) == []
    wet = run_dag_test()
    assert str(wet.state) in ("success", "DagRunState.SUCCESS"), wet.state
    events = domain_asset_events(wet.run_id)
    assert [task for task, _ in events] == ["apply"] and events[0][1]["writes"] > 0
    idle = run_dag_test()  # nothing changed in the tenant: nothing written, no event
    assert str(idle.state) in ("success", "DagRunState.SUCCESS"), idle.state
    assert domain_asset_events(idle.run_id) == []
