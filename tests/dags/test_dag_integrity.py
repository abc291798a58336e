"""Every DAG imports cleanly and follows the project's policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dags_import_without_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert "tenant_to_domain_sync" in dag_bag.dags


def test_every_dag_follows_the_policy(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.catchup is False, f"{dag_id}: catchup must be off"
        assert dag.doc_md, f"{dag_id}: no documentation"
        assert dag.max_active_runs == 1, f"{dag_id}: runs of a sync must not overlap"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id}: set a real owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: no retries"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id}: no failure alert"


def test_sync_dag_runs_the_stages_in_pipeline_order(dag_bag):
    dag = dag_bag.dags["tenant_to_domain_sync"]
    order = ["transform", "validate", "plan", "apply", "credentials", "commit", "report"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert {"extract_users", "extract_groups"} == dag.get_task("transform").upstream_task_ids
    assert set(dag.params.keys()) == {"full_resync", "dry_run", "approve_plan"}
    # The state lock's teardown: after the report, whatever happened upstream.
    release = dag.get_task("release_state_lock")
    assert release.is_teardown and release.upstream_task_ids == {"report"} and not release.downstream_task_ids
    assert dag.get_task("apply").pool == dag.get_task("commit").pool
    # Password changes go after the users exist and before commit, with retries of their own.
    credentials = dag.get_task("credentials")
    assert credentials.upstream_task_ids == {"apply"} and credentials.downstream_task_ids == {"commit"}
    assert credentials.retries == 3 and credentials.pool == dag.get_task("apply").pool


def test_approve_plan_takes_a_digest_or_nothing(dag_bag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    param = dag_bag.dags["tenant_to_domain_sync"].params.get_param("approve_plan")
    assert param.schema["title"] and param.description and param.value == ""
    params = ParamsDict({"approve_plan": param})
    params["approve_plan"] = "ab" * 32
    with pytest.raises(ParamValidationError, match="does not match"):
        params["approve_plan"] = "true"


def test_dag_files_import_no_heavy_modules_at_top_level():
    code = (
        "import sys, runpy\n"
        f"runpy.run_path({str(DAGS_DIR / 'tenant_to_domain_sync.py')!r})\n"
        "heavy = [m for m in ('pandas', 'great_expectations', 'ldap3', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    root = DAGS_DIR.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "include"), str(root)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] in ([""], []), f"heavy imports at parse time: {out.stdout}"
