"""The transform stage: fold the round into the tenant snapshot, then map it to directory records."""

from __future__ import annotations

import logging

import pandas as pd

from domain_sync.config import Settings
from domain_sync.records import MEMBER_COLUMNS, SNAPSHOT_MEMBER_COLUMNS
from domain_sync.runs import RunFolder, read_json
from domain_sync.state import StateStore
from domain_sync.transform.directory import to_directory_records
from domain_sync.transform.mapping import load_mapping
from domain_sync.transform.tenant_state import merge_members, merge_objects

log = logging.getLogger(__name__)


def _read(path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path is not None and path.exists() else None


def transform_run(settings: Settings, run: RunFolder) -> dict:
    mapping = load_mapping(settings.mapping_file)
    state = StateStore(settings.state_dir)
    links = read_json(run.file("extract", "delta_links.json"), {}) or {}
    missing = [r for r in ("users", "groups") if r not in links]
    if missing:
        raise RuntimeError(f"run {run.run_id}: no extract output for {', '.join(missing)}; extract must run first")

    user_changes = pd.read_parquet(run.file("extract", "users.parquet"))
    group_changes = pd.read_parquet(run.file("extract", "groups.parquet"))
    member_changes = pd.read_parquet(run.file("extract", "members.parquet"))
    if member_changes.empty:
        member_changes = pd.DataFrame(columns=MEMBER_COLUMNS)

    users_full = links["users"]["full_read"]
    groups_full = links["groups"]["full_read"]
    users, users_gone = merge_objects(_read(state.snapshot_file("snapshot_users.parquet")), user_changes,
                                      full=users_full, soft_delete_keeps=True)
    groups, groups_gone = merge_objects(_read(state.snapshot_file("snapshot_groups.parquet")), group_changes,
                                        full=groups_full, soft_delete_keeps=False)
    previous_members = _read(state.snapshot_file("snapshot_members.parquet"))
    if previous_members is None:
        previous_members = pd.DataFrame(columns=SNAPSHOT_MEMBER_COLUMNS)
    members = merge_members(previous_members, member_changes, full=groups_full,
                            groups_gone=groups_gone, objects_gone=users_gone | groups_gone)

    users.to_parquet(run.file("transform", "snapshot_users.parquet"), index=False)
    groups.to_parquet(run.file("transform", "snapshot_groups.parquet"), index=False)
    members.to_parquet(run.file("transform", "snapshot_members.parquet"), index=False)

    user_records, group_records, member_records = to_directory_records(users, groups, members, mapping)
    user_records.to_parquet(run.file("transform", "records_users.parquet"), index=False)
    group_records.to_parquet(run.file("transform", "records_groups.parquet"), index=False)
    member_records.to_parquet(run.file("transform", "records_members.parquet"), index=False)
    summary = {
        "tenant_users": len(users),
        "tenant_groups": len(groups),
        "tenant_memberships": len(members),
        "users_removed_this_round": len(users_gone),
        "groups_removed_this_round": len(groups_gone),
        "user_records": len(user_records),
        "group_records": len(group_records),
        "membership_records": len(member_records),
    }
    log.info("transform: %s", summary)
    return summary
