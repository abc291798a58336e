"""The operator every stage task is: runs one stage (domain_sync.pipeline.run_stage) and reports its lineage.

An operator rather than a TaskFlow function because the OpenLineage provider takes datasets (with
row counts and data-quality results) from an operator's `get_openlineage_facets_on_complete`; a
TaskFlow task with assets of `x-` schemes gets none. `writes`: the asset the stage changes; an
event is recorded for it through an alias only when the stage wrote (never for a dry run), and one for
the domain's users and for its groups when the stage wrote those (lineage.written_assets).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator

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
