"""Fold a round of Graph delta changes into the tenant snapshot (the desired source).

Graph rules (MS, DESIGN.md section 4): an object may appear several times in a round (the last
appearance wins, field by field: a page may carry only some properties); `@removed` reason
"changed" is a soft delete (restorable, the user is disabled in the domain), "deleted" a hard
delete; a full read (no delta link) replaces the snapshot, so objects missing from it are gone,
except users the snapshot holds as soft-deleted, which a full read never lists: they stay soft-deleted.

The fold is computed column-wise (a 100,000-user round in well under a second) with the result of
replaying the rows one by one in order: an object's last hard removal in the round cuts off
everything before it (the snapshot row included); after it, each property takes the value of the
last row that carried it; a soft removal marks the object soft-deleted if it exists at that point,
and a later appearance makes it active again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from domain_sync.columns import isin, objects
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


def _present_matrix(changes: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """For each column, which rows carried it (`_fields`; a row without `_fields` carries all)."""
    if FIELDS not in changes.columns:
        return {c: np.ones(len(changes), dtype=bool) for c in columns}
    codes, uniques = pd.factorize(changes[FIELDS], use_na_sentinel=True)
    field_sets = [set(u.split(",")) if isinstance(u, str) and u else None for u in uniques]
    out = {}
    for c in columns:
        by_unique = np.array([s is None or c in s for s in field_sets] + [True], dtype=bool)
        out[c] = by_unique[codes]  # code -1 (no _fields) picks the trailing True
    return out


def _last_per_slot(slots: np.ndarray) -> np.ndarray:
    """Positions (into `slots`) of the last occurrence of each slot value."""
    reversed_first = np.unique(slots[::-1], return_index=True)[1]
    return np.sort(len(slots) - 1 - reversed_first)


# A delta round naming fewer objects than this share of the snapshot folds only the rows it names.
TOUCHED_SHARE = 0.25


def merge_objects(
    snapshot: pd.DataFrame | None, changes: pd.DataFrame, full: bool, soft_delete_keeps: bool
) -> tuple[pd.DataFrame, set[str]]:
    """Return the new snapshot and the ids that left it (hard deletes, or soft deletes when
    `soft_delete_keeps` is false, as for groups). Rows without an id are ignored."""
    if not full and snapshot is not None and len(changes) < TOUCHED_SHARE * len(snapshot):
        return _merge_touched(snapshot, changes, soft_delete_keeps)
    return _fold(snapshot, changes, full, soft_delete_keeps)


def _merge_touched(snapshot: pd.DataFrame, changes: pd.DataFrame,
                   soft_delete_keeps: bool) -> tuple[pd.DataFrame, set[str]]:
    """A delta round's fold, the same as _fold's (values and row order): only the snapshot rows of the objects
    the round names are folded; the others are the snapshot's rows as read (their columns keep their types, so
    a 100,000-row snapshot is neither converted nor rebuilt for a thousand changes)."""
    named = set(objects(changes["id"]).dropna())
    touched = isin(snapshot["id"], named)
    folded, gone = _fold(snapshot[touched].reset_index(drop=True), changes, False, soft_delete_keeps)
    rest = snapshot[~touched].reset_index(drop=True)
    columns = list(folded.columns)
    for c in columns:  # a column the round brings that the snapshot lacks; a snapshot without states
        if c not in rest.columns:
            rest[c] = STATE_ACTIVE if c == TENANT_STATE else None
    if rest[TENANT_STATE].isna().any():
        rest[TENANT_STATE] = objects(rest[TENANT_STATE]).fillna(STATE_ACTIVE).to_numpy()
    folded = folded.assign(**{c: _as_column_of(folded[c], rest[c]) for c in columns})
    # Rows in _fold's order: the snapshot's (wherever they are now), then new objects as they first came (an
    # object the round removed for good and brought again is new: its snapshot row was cut).
    position = dict(zip(objects(snapshot["id"]).to_numpy()[touched], np.flatnonzero(touched), strict=True))
    if REMOVED in changes.columns:
        removed = objects(changes[REMOVED]).to_numpy()
        cut = (removed == REMOVED_HARD) | ((removed == REMOVED_SOFT) & (not soft_delete_keeps))
        for object_id in objects(changes["id"]).to_numpy()[cut]:
            position.pop(object_id, None)
    at = np.array([position.get(i, -1) for i in objects(folded["id"])], dtype=np.int64)
    arrived = at < 0
    at[arrived] = len(snapshot) + np.arange(int(arrived.sum()))
    places = np.concatenate([np.flatnonzero(~touched), at])
    merged = pd.concat([rest[columns], folded], ignore_index=True)
    return merged.take(np.argsort(places, kind="stable")).reset_index(drop=True), gone


def _as_column_of(values: pd.Series, like: pd.Series) -> pd.Series:
    """`values` (objects) in the type of the column they join, when it is a string column and every value is
    text or missing (anything else stays objects: the joined column becomes objects too)."""
    if isinstance(like.dtype, pd.StringDtype) and all(v is None or isinstance(v, str) for v in values):
        return values.astype(like.dtype)
    return values


def _fold(
    snapshot: pd.DataFrame | None, changes: pd.DataFrame, full: bool, soft_delete_keeps: bool
) -> tuple[pd.DataFrame, set[str]]:
    """The fold of the whole snapshot and round (merge_objects)."""
    before = set(objects(snapshot["id"])) if snapshot is not None else set()
    base = snapshot if snapshot is not None and not full else None
    if full and soft_delete_keeps and snapshot is not None and TENANT_STATE in snapshot.columns:
        # A full read lists no soft-deleted user (Graph keeps them in deletedItems): the ones the
        # snapshot knows stay soft-deleted (disabled, never deleted) until restored or hard-deleted.
        base = snapshot[objects(snapshot[TENANT_STATE]).to_numpy() == STATE_SOFT_DELETED].reset_index(drop=True)
    changes = changes[changes["id"].notna().to_numpy()].reset_index(drop=True)
    pos = np.arange(len(changes))
    ids = objects(changes["id"]).to_numpy()
    removed = objects(changes[REMOVED]).to_numpy() if REMOVED in changes.columns else np.full(len(changes), None)
    soft = removed == REMOVED_SOFT
    hard = (removed == REMOVED_HARD) | (soft & (not soft_delete_keeps))
    soft = soft & soft_delete_keeps
    data = pd.isna(removed)

    # The last hard removal of each object: rows up to it, and its snapshot row, no longer count.
    after_cut = np.ones(len(changes), dtype=bool)
    hard_ids: set = set()
    if hard.any():
        cut = pd.Series(pos[hard], index=ids[hard]).groupby(level=0).max()
        hard_ids = set(cut.index)
        after_cut = pos > pd.Series(ids, dtype=object).map(cut).fillna(-1).to_numpy()
    data &= after_cut
    soft &= after_cut
    base_ids_list = objects(base["id"]).to_numpy() if base is not None else np.array([], dtype=object)
    base_keep = ~isin(base_ids_list, hard_ids) if hard_ids else np.ones(len(base_ids_list), dtype=bool)
    base_ids = base_ids_list[base_keep]

    columns = [c for c in changes.columns if c not in (REMOVED, FIELDS)]
    if snapshot is not None:
        columns += [c for c in snapshot.columns if c not in columns]
    if TENANT_STATE not in columns:
        columns.append(TENANT_STATE)

    # Object order: kept snapshot rows, then new objects in the order they first appear.
    index = pd.Index(base_ids, dtype=object)
    new_ids = pd.unique(ids[data])
    new_ids = new_ids[index.get_indexer(new_ids) < 0] if len(index) else new_ids
    index = index.append(pd.Index(new_ids, dtype=object))
    slots = index.get_indexer(ids)  # -1 for rows of objects that are not in the result
    base_slots = np.arange(len(base_ids))

    present = _present_matrix(changes, [c for c in columns if c not in ("id", TENANT_STATE)])
    data_positions = np.flatnonzero(data)
    unique_rows = len(pd.unique(ids[data_positions])) == len(data_positions)
    result: dict[str, np.ndarray] = {"id": index.to_numpy(dtype=object)}
    for c in columns:
        if c in ("id", TENANT_STATE):
            continue
        out = np.full(len(index), None, dtype=object)
        if base is not None and c in base.columns:
            out[base_slots] = objects(base[c]).to_numpy()[base_keep]
        if c in changes.columns:
            rows = data_positions[present[c][data_positions]]
            if not unique_rows and len(rows):
                rows = rows[_last_per_slot(slots[rows])]
            out[slots[rows]] = objects(changes[c]).to_numpy()[rows]
        result[c] = out

    # State: the last of (appearance -> active, soft removal of an existing object -> soft-deleted).
    state = np.full(len(index), STATE_ACTIVE, dtype=object)
    if base is not None and TENANT_STATE in base.columns:
        kept_state = objects(base[TENANT_STATE]).to_numpy()[base_keep]
        state[base_slots] = np.where(pd.isna(kept_state), STATE_ACTIVE, kept_state)
    soft_positions = np.flatnonzero(soft)
    if len(soft_positions):
        first_data = pd.Series(data_positions, index=ids[data_positions]).groupby(level=0).min()
        in_base = isin(ids[soft_positions], set(base_ids))
        seen_before = pd.Series(ids[soft_positions], dtype=object).map(first_data).fillna(np.inf).to_numpy()
        soft_positions = soft_positions[in_base | (seen_before < soft_positions)]
    events = np.concatenate([data_positions, soft_positions])
    if len(events):
        event_state = np.concatenate([np.full(len(data_positions), STATE_ACTIVE, dtype=object),
                                      np.full(len(soft_positions), STATE_SOFT_DELETED, dtype=object)])
        order = np.argsort(events, kind="stable")
        events, event_state = events[order], event_state[order]
        last = _last_per_slot(slots[events])
        state[slots[events[last]]] = event_state[last]
    result[TENANT_STATE] = state

    frame = pd.DataFrame({c: pd.Series(result[c], dtype=object) for c in columns}, columns=columns)
    gone = before - set(result["id"])
    return frame, gone


def merge_members(
    snapshot: pd.DataFrame | None,
    changes: pd.DataFrame,
    full: bool,
    groups_gone: set[str],
    objects_gone: set[str],
) -> pd.DataFrame:
    """Memberships as a set of (group, member), the last change of a pair winning; removed groups and
    objects take theirs along."""
    parts = []
    if snapshot is not None and not full and len(snapshot):
        parts.append(snapshot[SNAPSHOT_MEMBER_COLUMNS].assign(removed=False))
    if len(changes):
        parts.append(changes[SNAPSHOT_MEMBER_COLUMNS + ["removed"]])
    if not parts:
        return pd.DataFrame(columns=SNAPSHOT_MEMBER_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.drop_duplicates(["group_id", "member_id"], keep="last")
    keep = (~frame["removed"].astype(bool).to_numpy() & ~isin(frame["group_id"], groups_gone)
            & ~isin(frame["member_id"], objects_gone))
    return frame.loc[keep, SNAPSHOT_MEMBER_COLUMNS].reset_index(drop=True)
