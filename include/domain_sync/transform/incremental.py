"""Records of a delta round made for the objects the round changed, the others kept from the last commit.

A directory record is a function of its object's snapshot row (with the scope marks on it), the mapping and
the domain's schema: nothing in it depends on other objects (names are made unique by the plan, against the
domain). So after a delta round only the records of the objects the round brought (changed, removed, new)
and of the objects whose scope changed are made again; every other record is the committed one, row for row.
Memberships are made again whole (one vectorized pass over the snapshot's member pairs).

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

import pandas as pd

from domain_sync.columns import objects
from domain_sync.records import GROUP, USER
from domain_sync.runs import RunFolder, records_file_name
from domain_sync.storage import read_json, read_parquet, write_json_atomic

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


def write_records_meta(run: RunFolder, fingerprint: str, remade: set[str] | None, why_full: str | None) -> None:
    """transform/records.json: the fingerprint, and whether every record was made (`remade` None; `full_because`
    why) or only those of `remade_ids` (validate checks those again)."""
    meta = {"format": RECORDS_FORMAT, "fingerprint": fingerprint}
    if remade is None:
        meta |= {"mode": FULL, "full_because": why_full}
    else:
        meta |= {"mode": INCREMENTAL, "remade_ids": sorted(remade)}
    write_json_atomic(run.records_meta, meta, compact=True)
