"""The sync on its own schedule, through a real scheduler on PostgreSQL (no run triggered by hand):
the incremental sync every minute (DOMAIN_SYNC_SYNC_SCHEDULE), one run at a time, and the drift check
run by the sync's asset event (DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS=true) after a sync that wrote the domain;
no sync run fails beside the drift check's runs, which take the same state lock (a sync run that finds it
held waits for it).
"""

from __future__ import annotations

import pytest

from domain_sync.drift import drift_files
from domain_sync.run_keys import run_key
from domain_sync.runs import RunFolder, read_json
from tests.fixtures.airflow_services import airflow_services  # noqa: F401 - fixture
from tests.fixtures.sync_env import by_sam, tenant_group, tenant_user

pytestmark = pytest.mark.e2e

SYNC = "tenant_to_domain_sync"
DRIFT = "domain_drift_check"


def test_the_sync_runs_on_its_schedule_one_at_a_time_and_the_drift_check_follows_its_writes(
        sync_env, airflow_services):  # noqa: F811
    services = airflow_services
    users = [tenant_user(nick, name) for nick, name in [("ana", "Ana Lima"), ("bob", "Bob Stone")]]
    emulator = sync_env.start_tenant({"users": users, "groups": [tenant_group("Staff", users)]})
    services.start(
        DOMAIN_SYNC_SYNC_SCHEDULE="* * * * *",
        DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for dag_id in (SYNC, DRIFT):
        services.wait_for_dag(dag_id)
        services.cli("dags", "unpause", dag_id)

    def scheduled(dag_id: str, state: str = "success") -> list[dict]:
        return [r for r in services.runs(dag_id) if r["run_type"] == "scheduled" and r["state"] == state]

    # The first scheduled run syncs the tenant.
    first_run = services.wait_for(lambda: scheduled(SYNC), 300, "a scheduled sync run to succeed")[0]
    assert set(by_sam(sync_env.synced_entries(["sAMAccountName"]))) == {"ana", "bob", "Staff"}

    # It wrote the domain: its asset event runs the drift check, which finds nothing to report.
    drift = services.wait_for(
        lambda: [r for r in services.runs(DRIFT) if r["run_type"] == "asset_triggered" and r["state"] == "success"],
        300, "the drift check to run on the sync's asset event")[0]
    report = read_json(drift_files(RunFolder(sync_env.settings.runs_dir, run_key(DRIFT, drift["run_id"])))[0])
    assert not report["changed_in_domain"] and not report["missing_in_domain"], report

    # A tenant change reaches the domain by a later scheduled run, with nobody triggering anything.
    emulator.admin.update_user(users[1]["id"], {"department": "Scheduled"})

    def carried() -> bool:
        entry = by_sam(sync_env.synced_entries(["sAMAccountName", "department"]))["bob"][1]
        return entry.get("department") in ("Scheduled", ["Scheduled"])

    services.wait_for(carried, 300, "a scheduled run to carry the tenant change", interval=5)
    services.wait_for(lambda: [r for r in scheduled(SYNC) if r["run_id"] != first_run["run_id"]], 300,
                      "a later scheduled sync run to succeed")
    # Drift checks (its own scheduled run on unpausing, one after each sync that wrote) take the state lock
    # too: no sync run failed beside them.
    assert not scheduled(SYNC, "failed"), services.diagnostics()

    # One run at a time: no two runs of the sync were ever running together.
    spans = services.query("SELECT start_date, end_date FROM dag_run WHERE dag_id = %s AND start_date IS NOT NULL "
                           "ORDER BY start_date", SYNC)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end is not None and end <= start, f"sync runs overlapped: {spans}"
    services.cli("dags", "pause", SYNC)
    services.cli("dags", "pause", DRIFT)
