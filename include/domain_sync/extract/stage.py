"""The extract stage: one delta round of a resource (users or groups) into the run folder."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from domain_sync.config import Settings
from domain_sync.extract.graph_reader import DeltaLinkExpired, read_delta
from domain_sync.extract.staging import MEMBER_SCHEMA, ParquetSink, TenantPageWriter, object_schema
from domain_sync.runs import RunFolder, read_json, write_json_atomic
from domain_sync.state import DELTA_LINK_WARN_AGE_DAYS, StateStore
from domain_sync.transform.mapping import load_mapping

log = logging.getLogger(__name__)

RESOURCES = {"users": "user", "groups": "group"}


@dataclass
class ExtractResult:
    resource: str
    full_read: bool
    expired_link_recovered: bool
    objects: int
    removed: int
    member_changes: int
    pages: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _make_hook(settings: Settings):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    return KiotaRequestAdapterHook(conn_id=settings.tenant_conn_id, timeout=settings.graph_timeout_seconds)


def extract_resource(settings: Settings, run: RunFolder, resource: str, full_resync: bool,
                     hook_factory=_make_hook) -> ExtractResult:
    if resource not in RESOURCES:
        raise ValueError(f"unknown resource {resource!r}; expected one of {sorted(RESOURCES)}")
    mapping = load_mapping(settings.mapping_file)
    select = mapping.graph_select(RESOURCES[resource])
    state = StateStore(settings.state_dir)
    saved = state.delta_links().get(resource)
    age = state.delta_link_ages().get(resource)
    if saved and age is not None and age > DELTA_LINK_WARN_AGE_DAYS:
        log.warning("the saved %s delta link is %.1f days old; Graph forgets them after 7 days", resource, age)
    link = None if full_resync or not saved else saved["link"]
    if full_resync:
        log.info("full resync requested: reading every %s", resource)
    elif link is None:
        log.info("no saved %s delta link: first run, reading every %s", resource, resource)

    expired = False
    try:
        result = _read_round(settings, run, resource, select, link, hook_factory)
    except DeltaLinkExpired as exc:
        log.warning("%s; reading every %s instead (full reconcile)", exc, resource)
        expired = True
        result = _read_round(settings, run, resource, select, None, hook_factory)
    new_link, pages, counts = result
    full = link is None
    links_file = run.file("extract", "delta_links.json")
    links = read_json(links_file, {}) or {}
    links[resource] = {"link": new_link, "full_read": full}
    write_json_atomic(links_file, links)
    outcome = ExtractResult(resource, full, expired, counts["objects"], counts["removed"],
                            counts["member_changes"], pages)
    log.info("extracted %s: %s", resource, outcome.to_json())
    return outcome


def _read_round(settings, run, resource, select, link, hook_factory):
    objects = ParquetSink(run.file("extract", f"{resource}.parquet"), object_schema(select))
    members = ParquetSink(run.file("extract", "members.parquet"), MEMBER_SCHEMA) if resource == "groups" else None
    writer = TenantPageWriter(objects, members, select)

    async def go():
        hook = hook_factory(settings)
        try:
            return await read_delta(hook, resource, select, link, writer.write, settings.tenant_conn_id,
                                    settings.graph_retry_budget_seconds)
        finally:
            await hook.close()

    try:
        new_link, pages = asyncio.run(go())
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return new_link, pages, writer.counts
