"""Records of a delta round made for the objects the round changed, the others kept from the last commit.

A directory record is a function of its object's snapshot row (with the scope marks on it), the mapping and
the domain's schema: nothing in it depends on other objects (names are made unique by the plan, against the
domain). So after a delta round only the records of the objects the round brought (changed, removed, new)
and of the objects whose scope changed are made again; every other record is the committed one, row for row.
Memberships are made again whole (one vectorized pass over the snapshot's member pairs).

A group the round brought whose record came out as its kept one changed in the tenant only through its
members (or through properties the mapping does not read): records_notes.json names it with the members the
round added or removed (groups_changed_by_members), and the incremental plan diffs only those members instead
of reading the group's member values whole (plan/incremental.py).

A round that brought nothing (no staged row, no full read) under the same fingerprint changes nothing: its
snapshot, records and notes are the committed ones, copied byte for byte (carry_idle_round) instead of read,
merged, made and written again.

The records are committed beside the snapshot (commit keeps records_*.parquet and records.json, the
fingerprint they were made under). They are made whole instead on a full read of users or groups, without
committed records, or when the fingerprint changed: the record rules (RECORDS_FORMAT: raise it when a rule
in transform/directory.py or naming changes), the mapping file, the domain's schema of the mapped
attributes, the scope setting. The drift check and a full resync always make them whole (a full read).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from domain_sync.columns import isin, objects
from domain_sync.records import GROUP, USER, is_missing
from domain_sync.runs import RunFolder, records_file_name
from domain_sync.storage import copy_file, read_json, read_parquet, write_json_atomic

RECORDS_FORMAT = 1
FULL, INCREMENTAL = "full", "incremental"


def records_fingerprint(mapping_file: str, schema: dict, scope_groups: str | None) -> str:
    """sha256 of what records are made from besides the snapshot: a change makes every record again."""
    mapping = Path(mapping_file)
    parts = {
        "format": RECORDS_FORMAT,
        "mapping": hashlib.sha256(mapping.read_bytes()).hexdigest() if mapping.exists() else None,
        "schema": schema,
        "scope_groups": scope_groups,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


@dataclass
class KeptRecords:
    """The committed records of users and groups, and the ids whose records this round makes again."""

    users: pd.DataFrame
    groups: pd.DataFrame
    changed: set[str]


def kept_records(state, fingerprint: str) -> tuple[KeptRecords | None, str | None]:
    """(the committed records, None), or (None, why every record is made again)."""
    meta_path = state.committed_file(RunFolder.RECORDS_META)
    if meta_path is None:
        return None, "no committed records"
    meta = read_json(meta_path, None)
    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint:
        return None, "the record rules, the mapping, the schema or the scope setting changed since the last commit"
    frames = {}
    for kind, frame in ((USER, "users"), (GROUP, "groups")):
        path = state.committed_file(records_file_name(frame))
        if path is None:
            return None, f"no committed {frame} records"
        frames[kind] = read_parquet(path)
        if "anchor" not in frames[kind].columns or not frames[kind]["anchor"].is_unique:
            return None, f"the committed {frame} records are unusable"
    return KeptRecords(frames[USER], frames[GROUP], set()), None


def round_ids(*changes: pd.DataFrame) -> set[str]:
    """The ids a round of staged changes names (changed, new, removed)."""
    out: set[str] = set()
    for frame in changes:
        if "id" in frame.columns and len(frame):
            out |= {str(i) for i in objects(frame["id"]).dropna()}
    return out


def _plain(value):
    """A record value as plain Python, so that a made record and the same one read back from Parquet compare
    equal (arrays as lists, missing values as None)."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(v) for v in value]
    if value is pd.NA or is_missing(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def unchanged_records(kept: pd.DataFrame, made: pd.DataFrame, ids: set[str]) -> set[str]:
    """The ids of `ids` whose record in `made` is, value for value, their record in `kept`."""
    if not ids or not len(kept) or not len(made) or list(kept.columns) != list(made.columns):
        return set()
    columns = ["anchor", *(c for c in kept.columns if c != "anchor")]

    def rows(frame: pd.DataFrame) -> dict[str, tuple]:
        picked = frame.loc[isin(frame["anchor"], ids), columns]
        return {str(r[0]): tuple(_plain(v) for v in r) for r in picked.itertuples(index=False, name=None)}

    before = rows(kept)
    return {anchor for anchor, row in rows(made).items() if before.get(anchor) == row}


def groups_changed_by_members(kept: KeptRecords | None, groups: pd.DataFrame, group_changes: pd.DataFrame,
                              member_changes: pd.DataFrame, scope_changed: set[str]) -> dict[str, list[str]]:
    """{group id: ids of the members the round added or removed} of the groups the round brought whose record
    is their kept one (not new, not leaving or entering scope): only their members changed."""
    if kept is None:
        return {}
    brought = round_ids(group_changes) - scope_changed
    same = unchanged_records(kept.groups, groups, brought)
    if not same:
        return {}
    out: dict[str, set[str]] = {g: set() for g in same}
    if len(member_changes):
        pairs = member_changes[["group_id", "member_id"]].dropna().astype(str)
        for group_id, member_id in pairs[pairs["group_id"].isin(same)].itertuples(index=False, name=None):
            out[group_id].add(member_id)
    return {g: sorted(m) for g, m in sorted(out.items())}


def write_records_meta(run: RunFolder, fingerprint: str, remade: set[str] | None, why_full: str | None,
                       idle: bool = False) -> None:
    """transform/records.json: the fingerprint, and whether every record was made (`remade` None; `full_because`
    why) or only those of `remade_ids` (validate checks those again); `idle_round`: the snapshot and records
    are the committed ones, carried (validate carries the committed quarantine)."""
    meta = {"format": RECORDS_FORMAT, "fingerprint": fingerprint}
    if remade is None:
        meta |= {"mode": FULL, "full_because": why_full}
    else:
        meta |= {"mode": INCREMENTAL, "remade_ids": sorted(remade)}
    if idle:
        meta["idle_round"] = True
    write_json_atomic(run.records_meta, meta, compact=True)


# Scope counts that say what a round moved; an idle round moved nothing.
SCOPE_MOVES = ("users_entering", "users_leaving", "groups_entering", "groups_leaving")


def carry_idle_round(state, run: RunFolder, fingerprint: str) -> dict | None:
    """For a round that brought nothing: the committed snapshot and records become this run's (copied), with
    the committed notes less what the last round moved; returns those notes. None (nothing written) when the
    commit lacks one of them or made its records under another fingerprint: the round is then made as any."""
    meta_path, notes_path = state.committed_file(RunFolder.RECORDS_META), state.committed_file(run.records_notes.name)
    meta = read_json(meta_path, None) if meta_path is not None else None
    notes = read_json(notes_path, None) if notes_path is not None else None
    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint or not isinstance(notes, dict) \
            or not isinstance(notes.get("scope"), dict):
        return None
    copies = {run.snapshot(frame): state.snapshot(frame) for frame in ("users", "groups", "members")}
    copies |= {run.records(frame): state.committed_file(records_file_name(frame))
               for frame in ("users", "groups", "members")}
    if any(source is None for source in copies.values()):
        return None
    for target, source in copies.items():
        copy_file(source, target)
    notes = {**notes, "scope_changed": [], "groups_changed_by_members": {},
             "scope": {**notes["scope"], **dict.fromkeys(SCOPE_MOVES, 0)}}
    write_records_meta(run, fingerprint, set(), None, idle=True)
    write_json_atomic(run.records_notes, notes)
    return notes
