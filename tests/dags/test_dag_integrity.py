"""Every DAG imports cleanly and follows the project's policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from domain_sync.errors import PermanentError, TransientError
from domain_sync.state import StateChanged, StateLocked
from tests.dags.conftest import DAGS_DIR


class MappingBroken(PermanentError):
    """A permanent error the retry rule has never heard of: it matches as a subclass."""


class GraphBusy(TransientError):
    """A transient error the retry rule has never heard of."""


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


def test_every_task_retries_only_what_a_retry_can_fix(dag_bag):
    """The retry rule (pipeline.retry_policy) evaluated as Airflow's task runner does: on failure it calls
    `task.retry_policy.evaluate(...)`; FAIL ends the task, DEFAULT or RETRY leave it to its retries.
    Permanent errors and defects (any other exception) fail at once; transient and connection errors retry."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction
    from airflow.sdk.exceptions import AirflowTaskTimeout

    for dag_id, dag in dag_bag.dags.items():
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            policy = task.retry_policy
            assert isinstance(policy, ExceptionRetryPolicy), f"{where}: no retry policy"
            for permanent in (MappingBroken("mapping rule 3 names no attribute"), StateChanged("state moved on"),
                              ValueError("defect"), KeyError("column"), RuntimeError("defect")):
                decision = policy.evaluate(exception=permanent, try_number=1, max_tries=task.retries, context=None)
                assert decision.action == RetryAction.FAIL, f"{where}: {type(permanent).__name__} is retried"
            for transient in (GraphBusy("503", delay=5), StateLocked("locked by run r1"),
                              ConnectionError("reset by peer"), ConnectionRefusedError(111, "refused"),
                              TimeoutError("timed out"), OSError(113, "no route to host"), AirflowTaskTimeout()):
                decision = policy.evaluate(exception=transient, try_number=1, max_tries=task.retries, context=None)
                assert decision.action in (RetryAction.DEFAULT, RetryAction.RETRY), f"{where}: {transient!r} fails"
            assert task.retries >= 1, f"{where}: nothing left to retry with"
            # The scheduler keeps the policy in the serialized DAG: the rule must survive the round trip.
            again = type(policy).deserialize(policy.serialize())
            assert again.evaluate(MappingBroken("x"), 1, task.retries).action == RetryAction.FAIL, where
            assert again.evaluate(KeyError("x"), 1, task.retries).action == RetryAction.FAIL, where
            assert again.evaluate(ConnectionError("x"), 1, task.retries).action != RetryAction.FAIL, where


def test_sync_dag_runs_the_stages_in_pipeline_order(dag_bag):
    dag = dag_bag.dags["tenant_to_domain_sync"]
    order = ["transform", "validate", "plan", "apply_batches", "apply", "credentials", "commit", "report"]
    for upstream, downstream in zip(order, order[1:], strict=False):  # apply_batches -> apply: also by the phases
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
