"""The sync DAG on the CeleryExecutor: scheduler, DAG processor and API server on PostgreSQL, Redis as the broker,
and two Celery workers, each in a folder of its own (AIRFLOW_HOME, working directory, TMPDIR, task logs) that
the other does not see, as if on two machines.

A triggered run lands the bundled demo tenant in the domain with its tasks spread over both workers (the
task instances' hostname, and the task logs each worker wrote to its own folder); a second run after a
change in the tenant reads the tenant's delta from the state the first run committed, whichever worker
committed it, and writes the change.

The data folder (run folders, state, alerts) is the `data_location` fixture's, one that every worker reaches:
abfs:// in Azurite (the storage account the test set-up starts), through the Airflow connection the
workers inherit, as workers on several machines would share it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain_sync.runs import RunFolder
from tests.fixtures.airflow_services import celery_airflow_services  # noqa: F401 - fixture
from tests.fixtures.sync_env import first

pytestmark = [pytest.mark.e2e, pytest.mark.celery, pytest.mark.azurite]

DAG_ID = "tenant_to_domain_sync"
DEMO_TENANT = Path(__file__).resolve().parents[2] / "emulator" / "tenants" / "demo.json"
WORKERS = ("worker-a", "worker-b")
TASKS = {"extract_users", "extract_groups", "transform", "validate", "plan", "apply_batches", "apply", "credentials",
         "commit", "report", "release_state_lock", "raise_alerts"}


@pytest.fixture(params=["abfs"])
def data_location(request, sync_env) -> str:
    """The data folder every worker reaches, as DOMAIN_SYNC_DATA_DIR with its connection DOMAIN_SYNC_DATA_CONN_ID:
    "abfs": a container of the test's own in Azurite (abfs_data); "local": the test's local folder (sync_env's),
    which both workers see only because they run on one machine."""
    if request.param == "abfs":
        return request.getfixturevalue("abfs_data")
    return str(sync_env.settings.data_dir)


def task_instances(services, run_id: str) -> list[tuple[str, str | None, str | None]]:
    """(task_id, state, hostname) of every task instance of a run (each mapped instance one)."""
    return services.query("SELECT task_id, state, hostname FROM task_instance WHERE dag_id = %s AND run_id = %s",
                          DAG_ID, run_id)


def test_a_run_spreads_over_two_celery_workers_and_lands_the_demo_tenant(
        sync_env, data_location, celery_airflow_services):  # noqa: F811
    services = celery_airflow_services
    assert str(sync_env.settings.data_dir) == data_location
    tenant = json.loads(DEMO_TENANT.read_text(encoding="utf-8"))
    emulator = sync_env.start_tenant(DEMO_TENANT)
    services.start(celery_workers=WORKERS, AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False")
    services.wait_for_dag(DAG_ID)
    services.cli("dags", "unpause", DAG_ID)

    # 1. The first run: every user and group of the demo tenant, with the memberships.
    services.cli("dags", "trigger", DAG_ID, "--conf", "{}", "--run-id", "celery_first")
    state = services.wait_for_run(DAG_ID, "celery_first", timeout=600)
    assert state == "success", f"first run {state}\n{services.diagnostics()}"
    instances = task_instances(services, "celery_first")
    # Every task instance succeeded, the DAG's stages and teardowns among them; only the apply phases
    # without batches were skipped (never started: no host).
    assert TASKS <= {task for task, _, _ in instances}, services.diagnostics()
    skipped = {task for task, state, _ in instances if state == "skipped"}
    assert all(task.startswith("apply_") and task.endswith((".batches", ".write")) for task in skipped), instances
    assert all(host == "" for task, _, host in instances if task in skipped), instances
    assert {state for task, state, _ in instances if task not in skipped} == {"success"}, \
        f"{instances}\n{services.diagnostics()}"

    entries = sync_env.synced_entries(["sAMAccountName", "objectClass", "member", "userPrincipalName"])
    users = [e for e in entries.values() if "group" not in [c.lower() for c in e["objectclass"]]]
    groups = [e for e in entries.values() if "group" in [c.lower() for c in e["objectclass"]]]
    assert {first(e["userprincipalname"]) for e in users} == {u["userPrincipalName"] for u in tenant["users"]}
    assert len(groups) == len(tenant["groups"])
    assert sum(len(e.get("member", [])) for e in groups) == sum(len(g.get("members", [])) for g in tenant["groups"])

    # The run's tasks ran on both workers: the hostname each worker reports, and the task logs in each
    # worker's own folder (none in the scheduler's).
    ran = {name: {task for task, _, host in instances if host == name} for name in WORKERS}
    print("tasks by worker:", json.dumps({name: sorted(tasks) for name, tasks in ran.items()}))
    assert {host for task, _, host in instances if task not in skipped} == set(WORKERS), \
        f"{instances}\n{services.diagnostics()}"
    for name in WORKERS:
        logged = set(services.worker_task_logs(name, DAG_ID, "celery_first"))
        assert logged == ran[name], (name, logged, ran)
    assert not list((services.home / "logs").glob(f"dag_id={DAG_ID}/**/*.log"))
    for name in WORKERS:
        worker_log = services.logs[name].read_text(encoding="utf-8", errors="replace")
        assert f"{name}@{services.queue} ready." in worker_log, worker_log[-3000:]
    # What the tasks handed on went to the shared data folder, none to a worker's own folders.
    assert RunFolder(sync_env.settings.runs_dir, "celery_first").summary()["commit"], data_location
    for home in [services.home, *services.worker_homes.values()]:
        assert not (home / "domain_sync").exists(), f"a data folder in {home}"

    # 2. A change in the tenant; the second run reads the delta from the state the first committed (whichever
    # worker committed it and whichever reads it now) and writes the change.
    ana = tenant["users"][0]
    emulator.admin.update_user(ana["id"], {"jobTitle": "Scaled out"})
    services.cli("dags", "trigger", DAG_ID, "--conf", "{}", "--run-id", "celery_second")
    state = services.wait_for_run(DAG_ID, "celery_second", timeout=600)
    assert state == "success", f"second run {state}\n{services.diagnostics()}"
    summary = RunFolder(sync_env.settings.runs_dir, "celery_second").summary()
    assert summary["extract_users"]["full_read"] is False, summary["extract_users"]
    titles = {first(e["userprincipalname"]): first(e.get("title"))
              for e in sync_env.synced_entries(["title", "userPrincipalName"]).values() if e.get("userprincipalname")}
    assert titles[ana["userPrincipalName"]] == "Scaled out", titles
    assert {host for _, state, host in task_instances(services, "celery_second") if state != "skipped"} <= set(WORKERS)
