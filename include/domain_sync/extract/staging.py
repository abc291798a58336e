"""Stream Graph pages into Parquet with bounded memory: rows are flushed every `batch_rows`; the file
appears whole at `close` (storage.replacing), never with `abort`."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from domain_sync.records import BOOL_PROPERTIES, FIELDS, FLAG_PROPERTIES, LIST_PROPERTIES, REMOVED
from domain_sync.storage import StoragePath, replacing


class _Abort(Exception):
    """Thrown into the file's `replacing` block: the file must not appear."""


class ParquetSink:
    def __init__(self, path: StoragePath, schema: pa.Schema, batch_rows: int = 5000):
        self.path = path
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._file = replacing(path)
        self._writer = pq.ParquetWriter(self._file.__enter__(), schema)

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self.rows += len(self._buffer)
            self._buffer = []

    def close(self) -> None:
        self.flush()
        self._writer.close()
        self._file.__exit__(None, None, None)

    def abort(self) -> None:
        self._writer.close()
        try:
            self._file.__exit__(_Abort, _Abort(), None)
        except _Abort:
            pass


def staged_value(name: str, value: Any) -> Any:
    """A Graph property's value as a staged cell (records.object_schema's column types)."""
    if value is None:
        return None
    if name in LIST_PROPERTIES:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if name in BOOL_PROPERTIES:
        return bool(value)
    if name in FLAG_PROPERTIES:  # only the flags: a complex value is never staged as text
        return any(bool(value.get(flag)) for flag in FLAG_PROPERTIES[name]) if isinstance(value, dict) else None
    if isinstance(value, (dict, list)):
        return str(value)
    return str(value)


def member_type(odata_type: str | None) -> str:
    """Graph's member type as it is ("#microsoft.graph.device" -> "device"): users and groups become
    members in the domain; devices, service principals and org contacts are counted, never written."""
    name = (odata_type or "").rsplit(".", 1)[-1]
    return name or "user"


def manager_change(item: dict[str, Any]) -> tuple[bool, str | None]:
    """(carried, manager id) of a Graph user: `manager@delta` as the users delta sends it (a list of
    {"@odata.type", "id"}, "@removed" on an entry when the manager was cleared), or `manager` as
    $expand gives it (an object, or null)."""
    if "manager@delta" in item:
        current = [e for e in item.get("manager@delta") or [] if isinstance(e, dict) and "@removed" not in e]
        return True, (current[-1].get("id") if current else None)
    if "manager" in item:
        manager = item["manager"]
        return True, (manager.get("id") if isinstance(manager, dict) else manager)
    return False, None


class TenantPageWriter:
    """Turns Graph objects of one resource into staged rows (and membership rows for groups)."""

    def __init__(self, objects: ParquetSink, members: ParquetSink | None, select: list[str]):
        self.objects = objects
        self.members = members
        self.columns = [f.name for f in objects.schema if f.name not in (REMOVED, FIELDS, "manager_id")]
        self.with_manager = "manager" in select
        self.counts = {"objects": 0, "removed": 0, "member_changes": 0}

    def write(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            row: dict[str, Any] = {"id": item.get("id")}
            removed = item.get("@removed")
            if removed is not None:
                row[REMOVED] = (removed or {}).get("reason", "deleted")
                self.counts["removed"] += 1
            else:
                present = [name for name in self.columns if name in item]
                for name in present:
                    row[name] = staged_value(name, item[name])
                carried, manager_id = manager_change(item) if self.with_manager else (False, None)
                if carried:
                    row["manager_id"] = manager_id
                    present.append("manager_id")
                row[FIELDS] = ",".join(present)
            self.objects.add(row)
            self.counts["objects"] += 1
            if self.members is not None:
                for member in item.get("members@delta") or []:
                    self.members.add({
                        "group_id": item.get("id"),
                        "member_id": member.get("id"),
                        "member_type": member_type(member.get("@odata.type")),
                        "removed": "@removed" in member,
                    })
                    self.counts["member_changes"] += 1

    def close(self) -> None:
        self.objects.close()
        if self.members is not None:
            self.members.close()

    def abort(self) -> None:
        self.objects.abort()
        if self.members is not None:
            self.members.abort()
