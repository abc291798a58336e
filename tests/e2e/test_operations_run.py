"""The operations DAGs run by a real Airflow deployment (scheduler, DAG processor, API server on PostgreSQL)
against the Graph emulator and the session's Samba DC, with alerts mailed to a local SMTP server and
posted to a local webhook.

One test, in acts on the same services:
1. the sync syncs a small tenant;
2. an attribute changed by hand in the domain and an object deleted there: the drift check reports both,
   and writes nothing to the domain;
3. two tenant changes, an on-demand run for one object id: only that object changes in the domain;
4. a backfill of the full resync over two weeks (two runs, one after the other) brings in the other change
   and repairs the drift; the second run finds nothing to write;
5. the tenant down: the sync's failed tasks mail the DAG, task, try, the error and the log link;
6. no success for longer than the freshness window, and the sync DAG paused: the watchdog alerts both.
"""

from __future__ import annotations

import json

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.drift import drift_files
from domain_sync.run_keys import run_key
from domain_sync.runs import RunFolder, read_json
from tests.fixtures.airflow_services import airflow_services  # noqa: F401 - fixture
from tests.fixtures.sync_env import by_sam, first, tenant_group, tenant_user

pytestmark = pytest.mark.e2e

SYNC = "tenant_to_domain_sync"
DRIFT = "domain_drift_check"
OBJECTS = "tenant_objects_sync"
FULL = "tenant_to_domain_full_resync"
WATCHDOG = "domain_sync_watchdog"


def entries(sync_env):
    return by_sam(sync_env.synced_entries(["sAMAccountName", "title", "department"]))


def test_drift_check_on_demand_sync_full_resync_backfill_and_alerts(sync_env, airflow_services,  # noqa: F811
                                                                      smtp_inbox, webhook_sink, monkeypatch):
    services = airflow_services
    smtp_port, mails = smtp_inbox
    hook_port, posts = webhook_sink
    users = [tenant_user(nick, name) for nick, name in
             [("ana", "Ana Lima"), ("bob", "Bob Stone"), ("eva", "Eva Berg"), ("ian", "Ian Holt")]]
    emulator = sync_env.start_tenant({"users": users, "groups": [tenant_group("Staff", users)]})
    ana, bob, eva = users[0], users[1], users[2]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "domain-sync@example.test"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": hook_port, "schema": "http", "extra": {"endpoint": "/x"}}))
    services.start(
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__CORE__MAX_TASK_RETRY_DELAY="1",
        DOMAIN_SYNC_GRAPH_RETRY_BUDGET_SECONDS="5",
        DOMAIN_SYNC_ALERT_CHANNELS="smtp,webhook",
        DOMAIN_SYNC_ALERT_EMAIL_TO="identity-ops@example.test",
        DOMAIN_SYNC_FRESHNESS_MINUTES="0.1",  # six seconds: the sync is stale by step 6
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for dag_id in (SYNC, DRIFT, OBJECTS, FULL, WATCHDOG):
        services.wait_for_dag(dag_id)
        services.cli("dags", "unpause", dag_id)

    def run(dag_id: str, run_id: str, conf: dict | None = None, expect: str = "success") -> None:
        services.cli("dags", "trigger", dag_id, "--conf", json.dumps(conf or {}), "--run-id", run_id)
        state = services.wait_for_run(dag_id, run_id, timeout=300)
        assert state == expect, f"{dag_id} {run_id}: {state}\n{services.diagnostics()}"

    # 1. The sync.
    run(SYNC, "ops_first_sync")
    assert set(entries(sync_env)) == {"ana", "bob", "eva", "ian", "Staff"}

    # 2. By hand in the domain: ana's title set, eva deleted. The drift check reports both, writes nothing.
    conn = sync_env.ldap()
    try:
        synced = entries(sync_env)
        assert conn.modify(synced["ana"][0], {"title": [("MODIFY_REPLACE", ["Changed by hand"])]}), conn.result
        assert conn.delete(synced["eva"][0]), conn.result
    finally:
        conn.unbind()
    usn = sync_env.highest_usn()
    run(DRIFT, "ops_drift")
    assert sync_env.highest_usn() == usn, "the drift check wrote to the domain"
    drift_run = RunFolder(sync_env.settings.runs_dir, run_key(DRIFT, "ops_drift"))
    report = read_json(drift_files(drift_run)[0])
    assert [e["anchor"] for e in report["changed_in_domain"]] == [ana["id"]], report
    assert "title" in report["changed_in_domain"][0]["what"]
    assert [e["anchor"] for e in report["missing_in_domain"]] == [eva["id"]], report
    assert any(a["kind"] == "drift_found" for a in read_alerts(sync_env.settings))
    assert mails.bodies("drift_found"), mails.subjects()

    # 3. Two tenant changes; the on-demand run for bob syncs bob only.
    emulator.admin.update_user(bob["id"], {"department": "On demand"})
    emulator.admin.update_user(users[3]["id"], {"department": "Later"})
    run(OBJECTS, "ops_on_demand", {"object_ids": [bob["id"]]})
    synced = entries(sync_env)
    assert first(synced["bob"][1].get("department")) == "On demand"
    assert not synced["ian"][1].get("department"), "an object that was not asked for was synced"
    assert first(synced["ana"][1].get("title")) == "Changed by hand" and "eva" not in synced
    plan = read_json(RunFolder(sync_env.settings.runs_dir, run_key(OBJECTS, "ops_on_demand")).plan)
    assert {c["anchor"] for c in plan["changes"] if c.get("anchor")} == {bob["id"]}, plan

    # 4. A backfill of the full resync over two weeks (its weekly schedule: two runs), one run after the other:
    # everything converges, the drift repaired; the second run finds nothing left to write.
    services.cli("backfill", "create", "--dag-id", FULL, "--from-date", "2026-01-04T03:00:00+00:00",
                 "--to-date", "2026-01-11T03:00:00+00:00", "--max-active-runs", "1",
                 "--dag-run-conf", json.dumps({"forget_delta_links": True}))
    backfill = [r for r in services.runs(FULL) if r["run_type"] == "backfill"]
    assert len(backfill) == 2, services.diagnostics()
    for r in backfill:
        assert services.wait_for_run(FULL, r["run_id"], timeout=300) == "success", services.diagnostics()
    (s1, e1), (s2, e2) = [services.query("SELECT start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s",
                                         FULL, r["run_id"])[0] for r in backfill]
    assert e1 <= s2 or e2 <= s1, f"the backfill's runs overlapped: {s1}..{e1} and {s2}..{e2}"
    writes = [read_json(RunFolder(sync_env.settings.runs_dir, run_key(FULL, r["run_id"])).apply_results)["total_writes"]
              for r in sorted(backfill, key=lambda r: services.query(
                  "SELECT start_date FROM dag_run WHERE dag_id = %s AND run_id = %s", FULL, r["run_id"])[0][0])]
    assert writes[0] > 0 and writes[1] == 0, writes
    synced = entries(sync_env)
    assert set(synced) == {"ana", "bob", "eva", "ian", "Staff"}
    assert first(synced["ian"][1].get("department")) == "Later" and not synced["ana"][1].get("title")

    # 5. The tenant down: each failed extract mails DAG, task, try, the error and the log link.
    emulator.stop()
    mails.clear()
    run(SYNC, "ops_tenant_down", expect="failed")
    failed = mails.bodies("task_failed")
    assert len(failed) == 2, mails.subjects()
    for body in failed:
        assert SYNC in body and "try 3" in body and "msgraph_tenant" in body, body
        assert f"http://127.0.0.1:{services.port}/dags/{SYNC}/runs/ops_tenant_down/tasks/extract_" in body, body
    assert any(p["alert"]["kind"] == "task_failed" for p in posts)

    # 6. No success for longer than the window (the tenant is still down), and the sync paused: both alert.
    services.cli("dags", "pause", SYNC)
    run(WATCHDOG, "ops_watchdog")
    stale = mails.bodies("sync_stale")
    assert stale and f"{SYNC} has not succeeded for" in stale[0], mails.subjects()
    assert mails.bodies("sync_paused"), mails.subjects()
