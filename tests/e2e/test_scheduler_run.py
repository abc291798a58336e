"""The sync DAG run by a real Airflow deployment: scheduler (LocalExecutor), DAG processor and API server on
PostgreSQL, against the Graph emulator and the session's Samba DC.

One test, four acts on the same services (starting Airflow costs most of the time):
1. a triggered run syncs a small tenant into the domain;
2. a backfill with ``full_resync`` carries a tenant change into the domain;
3. a backfill and a triggered run started together never work on the state at once (the state lock: the
   second waits for it);
4. with the tenant unreachable, a triggered run fails after its retries and the failure alert is raised.

The services run with ``[scheduler] use_job_schedule = False`` so that no scheduled run (the DAG runs every
5 minutes) interleaves with the runs under test, and with ``[core] max_task_retry_delay = 1`` which caps
the DAG's exponential retry delay (30 s, 60 s) at one second; the retry count itself is the DAG's.
"""

from __future__ import annotations

import json

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.runs import RunFolder, read_json
from domain_sync.state import StateStore
from tests.fixtures.airflow_services import airflow_services  # noqa: F401 - fixture
from tests.fixtures.sync_env import tenant_group, tenant_user

pytestmark = pytest.mark.e2e

DAG_ID = "tenant_to_domain_sync"
# One logical date: the DAG's cron schedule (every 5 minutes) makes a whole day 288 runs.
BACKFILL_DATE = "2026-01-02T00:00:00+00:00"
SECOND_BACKFILL_DATE = "2026-01-03T00:00:00+00:00"
STAGES = ["extract_users", "extract_groups", "transform", "validate", "plan", "apply", "credentials", "commit",
          "report"]
# The teardowns: one frees the state lock of a run ended early, one raises the run's alerts.
TASKS = [*STAGES, "release_state_lock", "raise_alerts"]


def small_tenant():
    users = [tenant_user(nick, name) for nick, name in
             [("ana", "Ana Lima"), ("bob", "Bob Stone"), ("eva", "Eva Berg"), ("ian", "Ian Holt"),
              ("zoe", "Zoe Park")]]
    staff = tenant_group("Staff", users)
    engineers = tenant_group("Engineers", users[:2])
    return {"users": users, "groups": [staff, engineers]}


def first(value):
    return value[0] if isinstance(value, list) else value


def by_sam(entries):
    return {first(e["samaccountname"]): (dn, e) for dn, e in entries.items()}


def state_window(sync_env, run_id: str) -> tuple:
    """(the time its extract took the state lock and read the state, the time it freed the lock) of a run: the
    time it worked on the state. An extract that waits for the lock held by another run has not begun then.
    The end is the release entry the run appended to the lock's log (commit frees it), not the commit task's
    end_date, which Airflow records after the task's process is done: the other run may take the lock in
    between."""
    from datetime import datetime
    from pathlib import Path

    read = read_json(RunFolder(sync_env.settings.runs_dir, run_id).state_read)
    lock_log = Path(str(sync_env.settings.state_dir)) / "lock"
    entries = [json.loads(p.read_text(encoding="utf-8")) for p in lock_log.glob("*.json")]
    released = [datetime.fromisoformat(e["at"]) for e in entries if isinstance(e, dict) and e.get("released_by") == run_id]
    assert released, f"run {run_id} never freed the state lock: {entries}"
    return datetime.fromisoformat(read["read_at"]), max(released)


def together_at_once(services, sync_env, emulator, tenant) -> None:
    """A backfill and a triggered run started together: one takes the state lock; the other's extract waits
    for it (state_lock_wait_seconds, then StateLocked and Airflow's retries) and works on the state only once
    the first has committed; if its wait and retries ran out first it fails without touching anything, and
    triggered again it goes on from the first run's state."""
    bob = tenant["users"][1]
    emulator.admin.update_user(bob["id"], {"jobTitle": "Both at once"})
    # Airflow runs one backfill of a DAG at a time: the one before must be closed first.
    services.wait_for(lambda: not services.query("SELECT 1 FROM backfill WHERE dag_id = %s AND completed_at IS NULL",
                                                 DAG_ID), 60, "the earlier backfill to be completed")
    services.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", SECOND_BACKFILL_DATE,
                 "--to-date", SECOND_BACKFILL_DATE, "--dag-run-conf", json.dumps({"full_resync": True}))
    services.cli("dags", "trigger", DAG_ID, "--conf", "{}", "--run-id", "e2e_beside_backfill")
    backfill_run = [r for r in services.runs(DAG_ID) if r["run_type"] == "backfill"][-1]["run_id"]
    runs = [backfill_run, "e2e_beside_backfill"]
    states = {run_id: services.wait_for_run(DAG_ID, run_id, timeout=900) for run_id in runs}  # one waits for the other
    assert "success" in states.values(), f"{states}\n{services.diagnostics()}"
    for run_id, state in states.items():
        summary = RunFolder(sync_env.settings.runs_dir, run_id).summary()
        if state == "failed":
            # Refused at extract on every try: nothing after extract ran, nothing was staged or written.
            tasks = services.task_states(DAG_ID, run_id)
            assert {t: tasks[t][0] for t in STAGES[2:]} == {t: "upstream_failed" for t in STAGES[2:]}, tasks
            assert any("StateLocked" in str((summary.get(t) or {}).get("failed")) for t in STAGES[:2]), summary
            assert tasks["release_state_lock"][0] == "success", tasks
            again = f"{run_id}_again".replace(":", "_").replace("+", "_")
            services.cli("dags", "trigger", DAG_ID, "--conf", "{}", "--run-id", again)
            assert services.wait_for_run(DAG_ID, again) == "success", services.diagnostics()
    finished = [r for r, state in states.items() if state == "success"]
    if len(finished) == 2:  # the second got the lock within its retries: after the first had committed
        (a_start, a_end), (b_start, b_end) = sorted(state_window(sync_env, r) for r in finished)
        assert b_start >= a_end or a_start >= b_end, "two runs worked on the state at once"
    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "title"]))
    assert first(entries["bob"][1]["title"]) == "Both at once", services.diagnostics()
    assert StateStore(sync_env.settings.state_dir).lock_holder() is None


def test_scheduler_runs_triggered_backfilled_and_failing_runs(sync_env, airflow_services):  # noqa: F811
    services = airflow_services
    tenant = small_tenant()
    emulator = sync_env.start_tenant(tenant)
    services.start(
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__CORE__MAX_TASK_RETRY_DELAY="1",
        DOMAIN_SYNC_GRAPH_RETRY_BUDGET_SECONDS="5",
    )
    services.wait_for_dag(DAG_ID)
    services.cli("dags", "unpause", DAG_ID)

    # 1. A triggered run syncs every user and group, with the memberships.
    services.cli("dags", "trigger", DAG_ID, "--conf", "{}", "--run-id", "e2e_triggered")
    state = services.wait_for_run(DAG_ID, "e2e_triggered")
    assert state == "success", f"triggered run {state}\n{services.diagnostics()}"
    tasks = services.task_states(DAG_ID, "e2e_triggered")
    # The apply's batches (mapped tasks, one group a phase): a phase with nothing to write is skipped.
    phases = {task: s for task, (s, _) in tasks.items() if task.startswith("apply_")}
    assert {task: s for task, (s, _) in tasks.items() if task not in phases} == \
        {task: "success" for task in TASKS}, services.diagnostics()
    assert phases["apply_batches"] == phases["apply_creates.write"] == "success", phases
    assert set(phases.values()) <= {"success", "skipped"}, phases
    # apply_batches skips a phase without batches whole: its `batches` task does not run either.
    groups = {task.split(".")[0] for task in phases if "." in task}
    assert all(phases[f"{g}.batches"] == phases[f"{g}.write"] for g in groups), phases
    pools = dict(services.query("SELECT task_id, pool FROM task_instance WHERE dag_id = %s AND run_id = %s",
                                DAG_ID, "e2e_triggered"))
    assert pools["apply"] == pools["commit"] == pools["apply_creates.write"] == "domain_writes"
    assert pools["plan"] == "default_pool"

    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "displayName", "member"]))
    nicks = [u["mailNickname"] for u in tenant["users"]]
    assert set(entries) == {*nicks, "Staff", "Engineers"}, services.diagnostics()
    user_dns = {nick: entries[nick][0].lower() for nick in nicks}
    assert sorted(m.lower() for m in entries["Staff"][1]["member"]) == sorted(user_dns.values())
    assert sorted(m.lower() for m in entries["Engineers"][1]["member"]) == sorted(
        [user_dns["ana"], user_dns["bob"]])

    # 2. A backfill with full_resync, after a change in the tenant, brings the change in.
    ana = tenant["users"][0]
    emulator.admin.update_user(ana["id"], {"displayName": "Ana Lima-Berg"})
    services.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL_DATE,
                 "--to-date", BACKFILL_DATE, "--dag-run-conf", json.dumps({"full_resync": True}))
    backfill_runs = [r for r in services.runs(DAG_ID) if r["run_type"] == "backfill"]
    assert len(backfill_runs) == 1, f"{backfill_runs}\n{services.diagnostics()}"
    backfill_run = backfill_runs[0]
    assert backfill_run["conf"] == {"full_resync": True} and backfill_run["backfill_id"] is not None
    state = services.wait_for_run(DAG_ID, backfill_run["run_id"])
    assert state == "success", f"backfill run {state}\n{services.diagnostics()}"
    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "displayName", "member"]))
    assert first(entries["ana"][1]["displayname"]) == "Ana Lima-Berg", services.diagnostics()
    assert set(entries) == {*nicks, "Staff", "Engineers"}
    # The run's conf reached the tasks: a full read of all users, where a delta read would see one change.
    summary = RunFolder(sync_env.settings.runs_dir, backfill_run["run_id"]).summary()
    assert summary["extract_users"]["full_read"] is True and summary["extract_users"]["objects"] == 5, summary

    # 3. A backfill and a triggered run at once (max_active_runs does not hold a backfill back): they
    # never work on the state at the same time.
    together_at_once(services, sync_env, emulator, tenant)

    # 4. The tenant is unreachable: the run fails after the DAG's retries, and the alert is raised.
    emulator.stop()
    alerts_before = len(read_alerts(sync_env.settings))
    services.cli("dags", "trigger", DAG_ID, "--conf", "{}", "--run-id", "e2e_tenant_down")
    state = services.wait_for_run(DAG_ID, "e2e_tenant_down", timeout=180)
    assert state == "failed", f"run with the tenant down {state}\n{services.diagnostics()}"
    tasks = services.task_states(DAG_ID, "e2e_tenant_down")
    assert tasks["extract_users"][0] == "failed" and tasks["extract_groups"][0] == "failed", tasks
    assert tasks["extract_users"][1] == tasks["extract_groups"][1] == 3, \
        f"expected the first try and the DAG's 2 retries: {tasks}"
    assert all(tasks[t][0] == "upstream_failed" for t in STAGES[2:]), tasks
    alerts = read_alerts(sync_env.settings)[alerts_before:]
    # One alert per task, on its final failure (not on the retries).
    failed = sorted((a["task_id"], a["run_id"]) for a in alerts if a["kind"] == "task_failed")
    assert failed == [("extract_groups", "e2e_tenant_down"), ("extract_users", "e2e_tenant_down")], alerts
    assert all("msgraph_tenant" in a["message"] for a in alerts if a["kind"] == "task_failed"), alerts
    # The scheduler closed the backfill once its run finished.
    services.wait_for(lambda: services.query("SELECT 1 FROM backfill WHERE id = %s AND completed_at IS NOT NULL",
                                             backfill_run["backfill_id"]), 60, "the backfill to be completed")
    # Nothing was written: the domain still holds what the backfill left.
    assert first(by_sam(sync_env.synced_entries(["sAMAccountName", "displayName"]))["ana"][1]["displayname"]) \
        == "Ana Lima-Berg"
