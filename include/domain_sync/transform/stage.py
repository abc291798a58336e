"""The transform stage: check the mapping against the domain's schema, fold the round into the tenant
snapshot, apply the scope, and map the snapshot to directory records that fit the schema."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict

import pandas as pd

from domain_sync.alerts import raise_alert
from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.domain_schema import DEFAULT_SCHEMA, DomainSchema, read_domain_schema
from domain_sync.errors import StageInputMissing
from domain_sync.mapping import Mapping, check_against_schema, load_mapping
from domain_sync.records import FIELDS, GROUP, MEMBER_COLUMNS, REMOVED, SNAPSHOT_MEMBER_COLUMNS, TENANT_STATE, USER
from domain_sync.runs import RunFolder
from domain_sync.state import StateLost, StateStore, check_state
from domain_sync.storage import parquet_rows, read_parquet, write_json_atomic, write_parquet
from domain_sync.transform.directory import directory_records
from domain_sync.transform.incremental import (
    FULL,
    INCREMENTAL,
    carry_idle_round,
    groups_changed_by_members,
    kept_records,
    records_fingerprint,
    round_ids,
    write_records_meta,
)
from domain_sync.transform.scope import compute_scope, mark_scope
from domain_sync.transform.tenant_state import merge_members, merge_objects

log = logging.getLogger(__name__)

MAX_LISTED_FIXES = 10_000


def _read(path) -> pd.DataFrame | None:
    return read_parquet(path) if path is not None and path.exists() else None


def target_schema(settings: Settings, mapping: Mapping, endpoint, run_id: str | None = None) -> DomainSchema:
    """The domain's schema for the mapped targets (the root DSE, then two searches of the schema
    partition) over a connection working for `run_id`; without an endpoint, the built-in defaults."""
    if endpoint is None:
        return DEFAULT_SCHEMA
    from domain_sync.domain import connect, disconnect

    names = set(mapping.targets(USER)) | set(mapping.targets(GROUP)) | {settings.anchor_attribute}
    conn = connect(endpoint, settings.ldap_timeout_seconds, run_id=run_id)
    try:
        return read_domain_schema(conn, names)
    finally:
        disconnect(conn)


def snapshot_columns(mapping: Mapping, kind: str) -> list[str]:
    """The snapshot columns the mapping's $select yields (as staged by extract)."""
    from domain_sync.records import object_schema

    return [f.name for f in object_schema(mapping.graph_select(kind)) if f.name not in (REMOVED, FIELDS)]


def _keep_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The snapshot holds what the mapping reads: a property no longer mapped is dropped (mapping it
    again later makes extract read every object, as the saved delta link does not track it)."""
    wanted = [c for c in columns if c in frame.columns] + [TENANT_STATE]
    out = frame[[c for c in wanted if c in frame.columns]]
    for c in columns:
        if c not in out.columns:
            out = out.assign(**{c: None})
    return out


def run(ctx: StageContext) -> dict:
    settings, run = ctx.settings, ctx.run
    mapping = load_mapping(settings.mapping_file)
    schema = target_schema(settings, mapping, ctx.endpoint, ctx.run.run_id)
    check_against_schema(mapping, schema, settings.anchor_attribute)
    state = StateStore(settings.state_dir)
    links = run.delta_links()
    missing = [r for r in ("users", "groups") if r not in links]
    if missing:
        raise StageInputMissing(f"run {run.run_id}: no extract output for {', '.join(missing)}; extract must run first")
    check_state(state, run)  # the state is still the version extract read, and no other run holds it

    user_changes = read_parquet(run.staged("users"))
    group_changes = read_parquet(run.staged("groups"))
    member_changes = read_parquet(run.staged("members"))
    if member_changes.empty:
        member_changes = pd.DataFrame(columns=MEMBER_COLUMNS)
    without_id = {USER: int(user_changes["id"].isna().sum()), GROUP: int(group_changes["id"].isna().sum())}

    users_full = links["users"]["full_read"]
    groups_full = links["groups"]["full_read"]
    targets = set(mapping.targets(USER)) | set(mapping.targets(GROUP))
    schema_json = schema.to_json(targets)
    fingerprint = records_fingerprint(settings.mapping_file, schema_json, settings.scope_groups)
    idle = not (users_full or groups_full or len(user_changes) or len(group_changes) or len(member_changes))
    notes = carry_idle_round(state, run, fingerprint) if idle and settings.plan_mode != "full" else None
    if notes is not None:
        write_json_atomic(run.target_schema, schema_json)
        return _summary(run, notes, schema, without_id, records_made=INCREMENTAL, remade=0,
                        fixes=_write_fixes(run, None), idle=True)
    previous_users = _read(state.snapshot("users"))
    previous_groups = _read(state.snapshot("groups"))
    previous_members = _read(state.snapshot("members"))
    _never_fold_onto_nothing(settings, run, {"users": (users_full, previous_users),
                                             "groups": (groups_full, previous_groups),
                                             "members": (groups_full, previous_members)})
    user_columns, group_columns = snapshot_columns(mapping, USER), snapshot_columns(mapping, GROUP)

    users, users_gone = merge_objects(previous_users, user_changes, full=users_full, soft_delete_keeps=True)
    groups, groups_gone = merge_objects(previous_groups, group_changes, full=groups_full, soft_delete_keeps=False)
    users, groups = _keep_columns(users, user_columns), _keep_columns(groups, group_columns)
    if previous_members is None:
        previous_members = pd.DataFrame(columns=SNAPSHOT_MEMBER_COLUMNS)
    members = merge_members(previous_members, member_changes, full=groups_full,
                            groups_gone=groups_gone, objects_gone=users_gone | groups_gone)

    scope = compute_scope(users, groups, members, settings.scope_groups, previous_users, previous_groups)
    users, groups = mark_scope(users, groups, scope)
    write_parquet(users, run.snapshot("users"))
    write_parquet(groups, run.snapshot("groups"))
    write_parquet(members, run.snapshot("members"))

    if settings.plan_mode == "full":
        kept, why_full = None, "DOMAIN_SYNC_PLAN_MODE=full"
    elif users_full or groups_full:
        kept, why_full = None, "a full read in the round"
    else:
        kept, why_full = kept_records(state, fingerprint)
    if kept is not None:
        kept.changed = round_ids(user_changes, group_changes) | {str(i) for i in scope.changed}
    records = directory_records(users, groups, members, mapping, schema, kept=kept)
    remade = len(records.users) + len(records.groups) if records.remade is None else len(records.remade)
    write_records_meta(run, fingerprint, records.remade, why_full)
    write_parquet(records.users, run.records("users"))
    write_parquet(records.groups, run.records("groups"))
    write_parquet(records.members, run.records("members"))
    # Tenant users without records (out of scope, never synced as far as the state knows): if the
    # domain holds them anyway (state lost, a restored backup), the plan disables them, never deletes.
    tenant_only = sorted(set(users["id"].astype(str).tolist()) - set(records.users["anchor"].astype(str).tolist()))
    scope_changed = {str(i) for i in scope.changed}
    by_members = groups_changed_by_members(kept, records.groups, group_changes, member_changes, scope_changed)
    notes = {"users_out_of_scope": tenant_only, "scope_changed": sorted(scope_changed),
             "memberships_dropped": records.dropped_memberships, "groups_changed_by_members": by_members,
             "member_types_not_synced": records.other_member_types, "scope": scope.preview}
    write_json_atomic(run.records_notes, notes)
    write_json_atomic(run.target_schema, schema_json)
    fixes = _write_fixes(run, records)
    summary = _summary(run, notes, schema, without_id, records_made=FULL if kept is None else INCREMENTAL,
                       remade=remade, fixes=fixes, why_full=why_full, removed=(len(users_gone), len(groups_gone)))
    if scope.preview["users_leaving"] or scope.preview["groups_leaving"]:
        log.warning("scope change: %d users leave scope (disabled), %d groups leave scope (deleted); %d users and "
                    "%d groups enter it", scope.preview["users_leaving"], scope.preview["groups_leaving"],
                    scope.preview["users_entering"], scope.preview["groups_entering"])
    return summary


def _summary(run: RunFolder, notes: dict, schema: DomainSchema, without_id: dict[str, int], *, records_made: str,
             remade: int, fixes: dict, why_full: str | None = None, removed: tuple[int, int] = (0, 0),
             idle: bool = False) -> dict:
    """The stage's summary, counted from the files it wrote (the same for a round made and an idle one)."""
    summary = {
        "tenant_users": parquet_rows(run.snapshot("users")),
        "tenant_groups": parquet_rows(run.snapshot("groups")),
        "tenant_memberships": parquet_rows(run.snapshot("members")),
        "users_removed_this_round": removed[0],
        "groups_removed_this_round": removed[1],
        "user_records": parquet_rows(run.records("users")),
        "group_records": parquet_rows(run.records("groups")),
        "membership_records": parquet_rows(run.records("members")),
        "memberships_dropped": notes["memberships_dropped"],
        "member_types_not_synced": notes["member_types_not_synced"],
        "staged_rows_without_id": without_id,
        "scope": notes["scope"],
        "values_fixed": fixes,
        # "incremental": only the records of the round's objects were made (the fixes are theirs), the rest kept;
        # an idle round (nothing staged) carries the committed snapshot and records as they are
        "records": {"made": records_made, "objects_remade": remade, **({"full_because": why_full} if why_full else {}),
                    **({"idle_round": True} if idle else {})},
        "schema": schema.source,
    }
    log.info("transform: %s", summary)
    return summary


def _never_fold_onto_nothing(settings: Settings, run: RunFolder, frames: dict[str, tuple[bool, object]]) -> None:
    """A delta round (not a full read) needs the snapshot it continues: without it the round would be
    taken for the whole tenant. Extract stops such runs first; this is the last line."""
    lost = [frame for frame, (full, previous) in frames.items() if not full and previous is None]
    if lost:
        message = (f"run {run.run_id}: a delta round of {', '.join(lost)} but no committed snapshot of it to fold it "
                   f"onto (lost state); trigger a run with full_resync=true")
        raise_alert(settings, "state_lost", message, run_id=run.run_id, missing=lost)
        raise StateLost(message)


def _write_fixes(run: RunFolder, records) -> dict[str, dict[str, int]]:
    """transform/value_fixes.json: each value cut or dropped to fit the schema (shape, never the value); none
    without records made (an idle round)."""
    listed, counts = [], {}
    for kind, frame in ((USER, records.users if records else None), (GROUP, records.groups if records else None)):
        fixes = records.fixes.get(kind, []) if records else []
        counts[kind] = dict(Counter(f"{f.action}:{f.attribute}" for f in fixes))
        anchors = frame["anchor"].to_numpy(dtype=object) if fixes else None
        for f in fixes[: MAX_LISTED_FIXES - len(listed)]:
            listed.append({"anchor": anchors[f.row], "kind": kind} | {k: v for k, v in asdict(f).items() if k != "row"})
    total = sum(sum(c.values()) for c in counts.values())
    write_json_atomic(run.value_fixes, {"total": total, "listed": listed})
    if total:
        log.warning("%d values did not fit the domain's schema and were cut or dropped (no object quarantined): %s; "
                    "see %s", total, counts, run.value_fixes)
    return counts

