"""The operations DAGs: schedules, params, wiring, teardowns, and no heavy imports when parsed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.dags.conftest import DAGS_DIR

OPERATIONS = ["tenant_to_domain_full_resync", "domain_drift_check", "tenant_objects_sync", "domain_sync_watchdog"]


def test_every_operations_dag_is_there(dag_bag):
    assert dag_bag.import_errors == {}
    assert set(OPERATIONS) <= set(dag_bag.dags)


def test_the_sync_runs_every_five_minutes_one_at_a_time_without_catchup(dag_bag):
    dag = dag_bag.dags["tenant_to_domain_sync"]
    assert dag.timetable.expression == "*/5 * * * *" and dag.max_active_runs == 1 and dag.catchup is False


def test_every_param_has_a_title_and_a_description(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.schema.get("title") and param.description, f"{dag_id}.{name}"


def test_a_param_reads_the_same_in_every_dag(dag_bag):
    """One definition per param (domain_sync.dag_params): the trigger forms never word one param two ways."""
    seen: dict[str, tuple[str, dict]] = {}
    for dag_id, dag in sorted(dag_bag.dags.items()):
        for name in dag.params:
            param = dag.params.get_param(name)
            shape = (param.description, param.schema)
            first = seen.setdefault(name, (dag_id, shape))
            assert first[1] == shape, f"{dag_id}.{name} differs from {first[0]}.{name}"


def test_every_run_of_a_stage_dag_ends_with_the_alert_and_lock_teardowns(dag_bag):
    for dag_id in ["tenant_to_domain_sync", "tenant_to_domain_full_resync", "domain_drift_check",
                   "tenant_objects_sync"]:
        dag = dag_bag.dags[dag_id]
        for teardown in ("raise_alerts", "release_state_lock"):
            task = dag.get_task(teardown)
            assert task.is_teardown and not task.downstream_task_ids, f"{dag_id}.{teardown}"


def test_the_full_resync_is_backfillable_and_forgets_links_first(dag_bag):
    dag = dag_bag.dags["tenant_to_domain_full_resync"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"  # Airflow backfills only periodic schedules
    assert set(dag.params) == {"dry_run", "forget_delta_links", "approve_plan"}
    assert dag.get_task("forget_delta_links").downstream_task_ids == {"extract_users", "extract_groups"}


def test_the_drift_check_is_daily_and_never_applies(dag_bag):
    dag = dag_bag.dags["domain_drift_check"]
    assert dag.timetable.expression == "0 6 * * *"
    assert not {"apply", "commit"} & set(dag.task_ids)
    assert dag.get_task("drift_report").upstream_task_ids == {"plan"}


def test_the_on_demand_sync_takes_one_to_fifty_object_ids(dag_bag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    dag = dag_bag.dags["tenant_objects_sync"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    params = ParamsDict({"object_ids": dag.params.get_param("object_ids")})
    params["object_ids"] = ["aaaaaaaa-0000-0000-0000-000000000001"]
    with pytest.raises(ParamValidationError):
        params["object_ids"] = ["ana@contoso.example"]
    with pytest.raises(ParamValidationError):
        params["object_ids"] = [f"{n:08x}-0000-0000-0000-000000000000" for n in range(51)]


def run_python(code: str, **env: str) -> str:
    root = DAGS_DIR.parent
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "include"), str(root)]), **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_the_drift_check_can_follow_the_syncs_domain_events():
    code = (
        "import runpy\n"
        f"dag = runpy.run_path({str(DAGS_DIR / 'domain_drift_check.py')!r})['domain_drift_check']\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"d = DagBag(dag_folder={str(DAGS_DIR / 'domain_drift_check.py')!r}).dags['domain_drift_check']\n"
        "print(type(d.timetable).__name__, d.timetable.asset_condition)\n"
    )
    assert "AssetOrTimeSchedule" in run_python(code, DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS="true")
    assert "ad_domain_synced_objects" in run_python(code, DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS="true")


def test_the_sync_schedule_follows_its_setting():
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"d = DagBag(dag_folder={str(DAGS_DIR / 'tenant_to_domain_sync.py')!r}).dags['tenant_to_domain_sync']\n"
        "print(d.timetable.expression)\n"
    )
    assert run_python(code, DOMAIN_SYNC_SYNC_SCHEDULE="*/15 * * * *") == "*/15 * * * *"


@pytest.mark.parametrize("dag_file", [f"{dag_id}.py" for dag_id in OPERATIONS])
def test_operations_dag_files_import_no_heavy_modules(dag_file):
    code = (
        "import sys, runpy\n"
        f"runpy.run_path({str(DAGS_DIR / dag_file)!r})\n"
        "print(','.join(m for m in ('pandas', 'great_expectations', 'ldap3', 'pyarrow') if m in sys.modules))\n"
    )
    assert run_python(code) == ""


@pytest.mark.parametrize(("dag_id", "key"), [
    ("tenant_to_domain_sync", "manual__1"),
    ("tenant_to_domain_full_resync", "tenant_to_domain_full_resync.manual__1"),
    ("domain_drift_check", "domain_drift_check.manual__1"),
    ("tenant_objects_sync", "tenant_objects_sync.manual__1"),
])
def test_stages_and_teardowns_work_in_the_run_folder_of_the_runs_key(dag_bag, monkeypatch, dag_id, key):
    """The sync DAG's runs keep their run id, the others' are `<dag id>.<run id>` (run_keys.py), for the
    stages and the lock teardown alike, so that no two DAGs' runs share a folder or the state lock."""
    from domain_sync import pipeline, state

    dag = dag_bag.dags[dag_id]
    calls = []
    monkeypatch.setattr(pipeline, "run_stage", lambda name, run, params: calls.append((name, run, params)) or {})
    monkeypatch.setattr(state, "release_run_lock", lambda settings, run: calls.append(("release", run, None)) or {})
    dag.get_task("transform").execute({"run_id": "manual__1", "dag": dag, "params": {"dry_run": False}})
    dag.get_task("release_state_lock").python_callable(run_id="manual__1", dag=dag)
    dag.get_task("raise_alerts").python_callable(run_id="manual__1", dag=dag)
    assert [(name, run) for name, run, _ in calls] == [("transform", key), ("release", key), ("alerts", key)]
    fixed = {"tenant_to_domain_full_resync": {"full_resync": True},
             "domain_drift_check": {"full_resync": True, "dry_run": True}}.get(dag_id, {})
    assert calls[0][2] == {"dry_run": False, **fixed}
