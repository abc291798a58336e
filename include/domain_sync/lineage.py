"""Lineage of a run: the Airflow assets of the tenant's and the domain's users and groups, and what each
stage read and wrote as OpenLineage datasets, with row counts and data-quality results.

Datasets (namespace, name):
- the tenant's users and groups: `x-msgraph://tenant`, `users` / `groups` (assets TENANT_USERS, TENANT_GROUPS);
- the domain's synced users and groups: `x-ldap://domain`, `users` / `groups` (DOMAIN_USERS, DOMAIN_GROUPS;
  an asset event from apply for each one it wrote);
- the hand-offs between stages: `domain-sync://runs`, `<stage>/<file>` (staged frames, records, plan, state).

`stage_datasets(name, result, run)` reads them from what the stage returned (its counts) and, for
validate, from validate/report.json (each expectation's result: a data-quality assertion); the stage
operator (stage_operator.py) turns them into OpenLineage input and output datasets when the task
completes. Airflow's OpenLineage provider sends the events to its configured transport
(`AIRFLOW__OPENLINEAGE__TRANSPORT`, e.g. `{"type": "file", "log_file_path": "...", "append": true}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import Asset

from domain_sync.runs import RunFolder, read_json

TENANT_NS = "x-msgraph://tenant"
DOMAIN_NS = "x-ldap://domain"
RUNS_NS = "domain-sync://runs"

TENANT_USERS = Asset(name="entra_tenant_users", uri=f"{TENANT_NS}/users")
TENANT_GROUPS = Asset(name="entra_tenant_groups", uri=f"{TENANT_NS}/groups")
DOMAIN_USERS = Asset(name="ad_domain_users", uri=f"{DOMAIN_NS}/users")
DOMAIN_GROUPS = Asset(name="ad_domain_groups", uri=f"{DOMAIN_NS}/groups")
# The stage's inlets and outlets among the four (Airflow assets; the OpenLineage datasets come from stage_datasets).
STAGE_ASSETS: dict[str, tuple[list[Asset], list[Asset]]] = {
    "extract_users": ([TENANT_USERS], []),
    "extract_groups": ([TENANT_GROUPS], []),
    "plan": ([DOMAIN_USERS, DOMAIN_GROUPS], []),
}


def written_assets(result: dict[str, Any]) -> dict[Asset, int]:
    """{asset: writes} of the domain's users and groups an apply result wrote (none for a dry run)."""
    if result.get("dry_run"):
        return {}
    writes = result.get("writes") or {}
    counts = {asset: sum(n for key, n in writes.items() if key.startswith(f"{kind}."))
              for kind, asset in (("user", DOMAIN_USERS), ("group", DOMAIN_GROUPS))}
    return {asset: n for asset, n in counts.items() if n}


@dataclass
class Dataset:
    namespace: str
    name: str
    rows: int | None = None
    # (assertion, success, column) of data-quality checks run on it
    assertions: list[tuple[str, bool, str | None]] = field(default_factory=list)


def _run_file(run: RunFolder, stage: str, name: str, rows: int | None = None) -> Dataset:
    return Dataset(RUNS_NS, f"{stage}/{name}", rows)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _assertions(run: RunFolder, kind: str) -> list[tuple[str, bool, str | None]]:
    report = read_json(run.validation_report, {}) or {}
    found = []
    for suite, outcome in sorted((report.get("suites") or {}).items()):
        if outcome.get("kind") != kind:
            continue
        for expectation in outcome.get("expectations") or []:
            found.append((f"{suite}.{expectation.get('expectation')}", bool(expectation.get("success")),
                          expectation.get("column")))
    return found


def stage_datasets(name: str, result: dict[str, Any], run: RunFolder) -> tuple[list[Dataset], list[Dataset]]:
    """(inputs, outputs) of stage `name` that returned `result` in `run`."""
    result = result or {}
    if name in ("extract_users", "extract_groups"):
        resource = name.split("_")[1]
        rows = _int(result.get("objects"))
        return [Dataset(TENANT_NS, resource, rows)], [_run_file(run, "extract", f"{resource}.parquet", rows)]
    if name == "transform":
        inputs = [_run_file(run, "extract", f"{frame}.parquet") for frame in ("users", "groups", "members")]
        outputs = [_run_file(run, "transform", "records_users.parquet", _int(result.get("user_records"))),
                   _run_file(run, "transform", "records_groups.parquet", _int(result.get("group_records"))),
                   _run_file(run, "transform", "records_members.parquet", _int(result.get("membership_records")))]
        return inputs, outputs
    if name == "validate":
        checked = result.get("checked") or {}
        inputs = [Dataset(RUNS_NS, f"transform/records_{kind}s.parquet", _int(checked.get(kind)),
                          _assertions(run, kind)) for kind in ("user", "group")]
        quarantined = sum((result.get("quarantined") or {}).values())
        return inputs, [_run_file(run, "validate", "quarantine.json", quarantined)]
    if name == "plan":
        synced = result.get("synced_in_domain") or {}
        inputs = [_run_file(run, "transform", "records_users.parquet"),
                  _run_file(run, "transform", "records_groups.parquet"),
                  Dataset(DOMAIN_NS, "users", _int(synced.get("user"))),
                  Dataset(DOMAIN_NS, "groups", _int(synced.get("group")))]
        return inputs, [_run_file(run, "plan", "plan.json", _int(result.get("changes")))]
    if name == "apply":
        writes = result.get("writes") or {}
        outputs = [] if result.get("dry_run") else [
            Dataset(DOMAIN_NS, f"{kind}s", sum(n for key, n in writes.items() if key.startswith(f"{kind}.")))
            for kind in ("user", "group")]
        return [_run_file(run, "plan", "plan.json", _int(result.get("planned")))], outputs
    if name == "commit":
        return ([_run_file(run, "transform", "snapshot_users.parquet")],
                [Dataset(RUNS_NS, "state/current")] if result.get("committed") else [])
    return [], []


def openlineage_facets(name: str, result: dict[str, Any], run: RunFolder):
    """The stage's OperatorLineage for the OpenLineage provider (imported only when it asks)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )
    from openlineage.client.generated.data_quality_metrics_input_dataset import DataQualityMetricsInputDatasetFacet
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
    from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

    inputs, outputs = stage_datasets(name, result, run)

    def input_dataset(d: Dataset):
        facets, input_facets = {}, {}
        if d.rows is not None:
            input_facets["inputStatistics"] = InputStatisticsInputDatasetFacet(rowCount=d.rows)
            input_facets["dataQualityMetrics"] = DataQualityMetricsInputDatasetFacet(rowCount=d.rows, columnMetrics={})
        if d.assertions:
            facets["dataQualityAssertions"] = DataQualityAssertionsDatasetFacet(assertions=[
                Assertion(assertion=a, success=s, column=c) for a, s, c in d.assertions])
        return InputDataset(namespace=d.namespace, name=d.name, facets=facets, inputFacets=input_facets)

    def output_dataset(d: Dataset):
        output_facets = {}
        if d.rows is not None:
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=d.rows)
        return OutputDataset(namespace=d.namespace, name=d.name, outputFacets=output_facets)

    return OperatorLineage(inputs=[input_dataset(d) for d in inputs], outputs=[output_dataset(d) for d in outputs])
