"""Fold a round of Graph delta changes into the tenant snapshot (the desired source).

Graph rules (MS, DESIGN.md section 4): an object may appear several times in a round (the last
appearance wins, field by field: a page may carry only some properties); `@removed` reason
"changed" is a soft delete (restorable, the user is disabled in the domain), "deleted" a hard
delete; a full read (no delta link) replaces the snapshot, so objects missing from it are gone.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from domain_sync.records import (
    FIELDS,
    REMOVED,
    REMOVED_HARD,
    REMOVED_SOFT,
    SNAPSHOT_MEMBER_COLUMNS,
    STATE_ACTIVE,
    STATE_SOFT_DELETED,
    TENANT_STATE,
)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def merge_objects(
    snapshot: pd.DataFrame | None, changes: pd.DataFrame, full: bool, soft_delete_keeps: bool
) -> tuple[pd.DataFrame, set[str]]:
    """Return the new snapshot and the ids that left it (hard deletes, or soft deletes when
    `soft_delete_keeps` is false, as for groups)."""
    objects: dict[str, dict[str, Any]] = {}
    if snapshot is not None and not full:
        objects = {row["id"]: row for row in snapshot.to_dict("records")}
    before = set(snapshot["id"]) if snapshot is not None else set()
    for row in changes.to_dict("records"):
        object_id = row["id"]
        removed = row.get(REMOVED)
        if not _is_missing(removed):
            if removed == REMOVED_SOFT and soft_delete_keeps:
                if object_id in objects:
                    objects[object_id][TENANT_STATE] = STATE_SOFT_DELETED
            elif removed in (REMOVED_SOFT, REMOVED_HARD):
                objects.pop(object_id, None)
            continue
        fields = row.get(FIELDS)
        present = set(fields.split(",")) if isinstance(fields, str) and fields else set(row)
        current = objects.get(object_id, {"id": object_id})
        for name, value in row.items():
            if name in (REMOVED, FIELDS) or (name not in present and name != "id"):
                continue
            current[name] = value
        current[TENANT_STATE] = STATE_ACTIVE
        objects[object_id] = current
    columns = [c for c in changes.columns if c not in (REMOVED, FIELDS)]
    if snapshot is not None:
        columns += [c for c in snapshot.columns if c not in columns]
    if TENANT_STATE not in columns:
        columns.append(TENANT_STATE)
    frame = pd.DataFrame(list(objects.values()), columns=columns)
    gone = before - set(objects)
    return frame, gone


def merge_members(
    snapshot: pd.DataFrame | None,
    changes: pd.DataFrame,
    full: bool,
    groups_gone: set[str],
    objects_gone: set[str],
) -> pd.DataFrame:
    """Memberships as a set of (group, member); removed groups and objects take theirs along."""
    members: dict[tuple[str, str], str] = {}
    if snapshot is not None and not full:
        for group_id, member_id, member_type in snapshot[SNAPSHOT_MEMBER_COLUMNS].itertuples(index=False):
            members[(group_id, member_id)] = member_type
    for group_id, member_id, member_type, removed in changes[
        ["group_id", "member_id", "member_type", "removed"]
    ].itertuples(index=False):
        if removed:
            members.pop((group_id, member_id), None)
        else:
            members[(group_id, member_id)] = member_type
    rows = [
        (g, m, t) for (g, m), t in members.items() if g not in groups_gone and m not in objects_gone
    ]
    return pd.DataFrame(rows, columns=SNAPSHOT_MEMBER_COLUMNS)
