"""The apply as mapped tasks in the stage DAGs: the phases in apply order, each a mapped write task in the
writers' pool, trigger rules that let empty phases through and stop at a failed one, the retry rule."""

from __future__ import annotations

import pytest

from domain_sync.apply.phases import BATCH_PARAM, MERGE_PARAM, PHASE_NAMES
from domain_sync.run_keys import FULL_RESYNC_DAG_ID, OBJECTS_DAG_ID

STAGE_DAGS = ["tenant_to_domain_sync", FULL_RESYNC_DAG_ID, OBJECTS_DAG_ID]


@pytest.mark.parametrize("dag_id", STAGE_DAGS)
def test_the_phases_run_in_apply_order_between_apply_batches_and_apply(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    assert dag.get_task("plan").downstream_task_ids == {"apply_batches"}
    earlier: set[str] = set()
    for phase in PHASE_NAMES:
        batches, write = dag.get_task(f"apply_{phase}.batches"), dag.get_task(f"apply_{phase}.write")
        assert batches.upstream_task_ids == {"apply_batches"}
        # Each phase waits for every batch of every phase before (a mapped upstream counts all its instances),
        # so a failure stops the later phases even past a phase apply_batches skipped.
        assert write.upstream_task_ids == {batches.task_id, "apply_batches", *earlier}, phase
        earlier.add(write.task_id)
    apply = dag.get_task("apply")
    assert apply.upstream_task_ids == {*earlier, "apply_batches"}
    assert apply.fixed_params[MERGE_PARAM] is True
    assert apply.downstream_task_ids == ({"credentials"} if dag_id == "tenant_to_domain_sync" else {"commit"})


@pytest.mark.parametrize("dag_id", STAGE_DAGS)
def test_apply_batches_starts_only_the_phases_with_batches_and_always_apply(dag_bag, dag_id):
    """What apply_batches follows: each phase's `batches` and `write` when it holds batches, and apply; every
    other task right after it is skipped without starting (a run with nothing to write starts no phase)."""
    from domain_sync.stage_operator import BranchingStageOperator

    prepare = dag_bag.dags[dag_id].get_task("apply_batches")
    assert isinstance(prepare, BranchingStageOperator) and prepare.inherits_from_skipmixin
    assert prepare.follow_key == "batches" and prepare.always == ["apply"]
    assert prepare.follow == {p: [f"apply_{p}.batches", f"apply_{p}.write"] for p in PHASE_NAMES}
    assert prepare.downstream_task_ids == {"apply", *(i for ids in prepare.follow.values() for i in ids)}


@pytest.mark.parametrize("dag_id", STAGE_DAGS)
def test_each_phase_is_a_mapped_write_task_in_the_writers_pool(dag_bag, dag_id):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from domain_sync.tasks import APPLY_POOL

    dag = dag_bag.dags[dag_id]
    for phase in PHASE_NAMES:
        write = dag.get_task(f"apply_{phase}.write")
        assert isinstance(write, MappedOperator), phase
        assert write.partial_kwargs["stage"] == "apply_batch"
        assert set(write.expand_input.value) == {"fixed_params"}  # one instance per batch of the phase
        assert write.pool == APPLY_POOL == dag.get_task("apply").pool == dag.get_task("commit").pool
        assert BATCH_PARAM in write.map_index_template  # the UI names each instance by its batch


@pytest.mark.parametrize("dag_id", STAGE_DAGS)
def test_empty_phases_let_the_next_run_and_a_failed_one_stops_it(dag_bag, dag_id):
    """An empty phase's mapped task is skipped (zero instances): none_failed lets the next phase and apply run;
    a failed batch makes every later phase and apply upstream_failed (none_failed never runs past a failure)."""
    from airflow.sdk import TriggerRule

    dag = dag_bag.dags[dag_id]
    for phase in PHASE_NAMES:
        assert dag.get_task(f"apply_{phase}.write").trigger_rule == TriggerRule.NONE_FAILED
        assert dag.get_task(f"apply_{phase}.batches").trigger_rule == TriggerRule.ALL_SUCCESS
    assert dag.get_task("apply").trigger_rule == TriggerRule.NONE_FAILED
    assert dag.get_task("commit").trigger_rule == TriggerRule.ALL_SUCCESS


def test_a_batch_task_retries_a_domain_that_went_away_but_not_a_plan_it_cannot_cut(dag_bag):
    from airflow.sdk import RetryAction

    from domain_sync.apply.batches import PlanOrderUnsupported
    from domain_sync.apply.writer import ApplyAborted

    for dag_id in STAGE_DAGS:
        write = dag_bag.dags[dag_id].get_task("apply_creates.write")
        policy = write.retry_policy
        assert write.retries >= 1
        assert policy.evaluate(ApplyAborted("gone"), 1, write.retries).action != RetryAction.FAIL
        assert policy.evaluate(PlanOrderUnsupported("x"), 1, write.retries).action == RetryAction.FAIL


def test_a_phases_batches_task_lists_the_batches_apply_batches_cut(dag_bag, tmp_path, monkeypatch):
    from domain_sync.apply.batches import cut_batches, write_batches
    from domain_sync.config import Settings
    from domain_sync.records import Change, Op
    from domain_sync.run_keys import run_key
    from domain_sync.runs import RunFolder

    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path))
    changes = [Change(Op.CREATE, "user", f"a{n}", f"CN=u{n},OU=S,DC=x") for n in range(5)]
    full = dag_bag.dags[FULL_RESYNC_DAG_ID]
    run = RunFolder(Settings.from_env().runs_dir, run_key(full.dag_id, "manual__1"))
    write_batches(run, "d", changes, cut_batches(changes, 2))
    listed = full.get_task("apply_creates.batches").python_callable(run_id="manual__1", dag=full)
    assert listed == [{"full_resync": True, BATCH_PARAM: f"creates-000{n}"} for n in (1, 2, 3)]
    assert full.get_task("apply_renames.batches").python_callable(run_id="manual__1", dag=full) == []


@pytest.mark.parametrize(("counts", "started"), [
    ({}, set()),  # a dry run or nothing to write: no phase starts
    ({"creates": 2, "member_adds": 1, "deletes": 0}, {"creates", "member_adds"}),
])
def test_apply_batches_skips_the_phases_without_batches_without_starting_them(dag_bag, monkeypatch, counts, started):
    from airflow.sdk.bases.skipmixin import XCOM_SKIPMIXIN_FOLLOWED, XCOM_SKIPMIXIN_KEY
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    from domain_sync.stage_operator import StageOperator

    monkeypatch.setattr(StageOperator, "execute", lambda self, context: {"batches": counts})
    prepare = dag_bag.dags["tenant_to_domain_sync"].get_task("apply_batches")

    class TI:
        map_index = -1
        pushed: dict = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = TI()
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        prepare.execute({"ti": ti})
    followed = {"apply", *(f"apply_{p}.{t}" for p in started for t in ("batches", "write"))}
    assert set(ti.pushed[XCOM_SKIPMIXIN_KEY][XCOM_SKIPMIXIN_FOLLOWED]) == followed
    assert {task_id for task_id, _ in skipped.value.tasks} == prepare.downstream_task_ids - followed
    assert len(skipped.value.tasks) == 2 * (len(PHASE_NAMES) - len(started))
