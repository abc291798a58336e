"""The operator every stage task is: runs one stage (domain_sync.pipeline.run_stage) and reports its lineage.

An operator rather than a TaskFlow function because the OpenLineage provider takes datasets (with
row counts and data-quality results) from an operator's `get_openlineage_facets_on_complete`; a
TaskFlow task with assets of `x-` schemes gets none. `writes`: the asset the stage changes; an
event is recorded for it through an alias only when the stage wrote (never for a dry run), and one for
the domain's users and for its groups when the stage wrote those (lineage.written_assets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.bases.skipmixin import XCOM_SKIPMIXIN_FOLLOWED, XCOM_SKIPMIXIN_KEY, SkipMixin

from domain_sync.lineage import STAGE_ASSETS, written_assets
from domain_sync.run_keys import run_key


class StageOperator(BaseOperator):
    def __init__(self, *, stage: str, writes: Asset | None = None, fixed_params: dict[str, Any] | None = None,
                 **kwargs):
        self.alias = AssetAlias(f"{stage}_writes") if writes is not None else None
        inlets, outlets = STAGE_ASSETS.get(stage, ([], []))
        kwargs["inlets"] = [*kwargs.get("inlets", []), *inlets]
        kwargs["outlets"] = [*kwargs.get("outlets", []), *outlets, *([self.alias] if self.alias else [])]
        super().__init__(**kwargs)
        self.stage = stage
        self.writes = writes
        self.fixed_params = dict(fixed_params or {})
        self._outcome: tuple[str, dict] | None = None

    def execute(self, context) -> dict:
        from domain_sync.pipeline import run_stage

        key = run_key(context["dag"].dag_id, context["run_id"])  # the run folder's name (run_keys.py)
        result = run_stage(self.stage, key, {**dict(context.get("params") or {}), **self.fixed_params})
        # An event only for a run that wrote the domain: a dry run or a run with nothing to write is no
        # change of the domain (and must not start the drift check that follows the sync's events).
        if self.alias is not None and not result.get("dry_run") and result.get("total_writes", 0) > 0:
            events = context["outlet_events"][self.alias]
            events.add(self.writes, extra={"run_id": key, "writes": result.get("total_writes", 0)})
            for asset, writes in written_assets(result).items():  # the domain's users, groups
                events.add(asset, extra={"run_id": key, "writes": writes})
        self._outcome = (key, result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance):
        from domain_sync.config import Settings
        from domain_sync.lineage import openlineage_facets
        from domain_sync.runs import RunFolder

        key, result = self._outcome or (task_instance.run_id, {})
        return openlineage_facets(self.stage, result, RunFolder(Settings.from_env().runs_dir, key))


class BranchingStageOperator(StageOperator, SkipMixin):
    """A stage that chooses which of the tasks right after it start: `follow[name]` for each name whose count
    in its result's `follow_key` is above 0, and always `always`; the other tasks right after it are skipped
    without starting (apply_batches: the phases with no batch start nothing). Unlike a branch operator it
    follows exactly those tasks, not whatever lies downstream of them (a later phase stays skipped)."""

    inherits_from_skipmixin = True

    def __init__(self, *, follow: Mapping[str, Sequence[str]], follow_key: str, always: Sequence[str] = (),
                 **kwargs):
        super().__init__(**kwargs)
        self.follow = {name: list(ids) for name, ids in follow.items()}
        self.follow_key = follow_key
        self.always = list(always)

    def execute(self, context) -> dict:
        result = super().execute(context)
        chosen = {i for name, count in (result.get(self.follow_key) or {}).items() if count
                  for i in self.follow.get(name, ())}
        chosen |= set(self.always)
        ti = context["ti"]
        after = sorted(self.downstream_task_ids)
        # Read by NotPreviouslySkippedDep: a skipped task cleared later is skipped again.
        ti.xcom_push(key=XCOM_SKIPMIXIN_KEY, value={XCOM_SKIPMIXIN_FOLLOWED: [i for i in after if i in chosen]})
        skip = [i for i in after if i not in chosen]
        self.log.info("following %s; skipping %s", sorted(chosen & set(after)), skip)
        self._set_state_to_skipped([(i, ti.map_index) for i in skip], ti.map_index)  # raises when it skips any
        return result
