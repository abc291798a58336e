"""The record shapes passed between stages, defined once.

Stage hand-offs are files in the run folder (see `runs.RunFolder`); XCom only carries their
summaries. Frames are pandas DataFrames stored as Parquet.

Staged tenant changes (extract -> transform), one frame per object type:
  users:    id, <selected Graph attributes>, manager_id, _removed, _fields
  groups:   id, <selected Graph attributes>, _removed, _fields
  members:  group_id, member_id, member_type ("user" | "group"), removed (bool)
  `_removed` is None, "changed" (soft delete) or "deleted" (hard delete) as Graph reports it;
  `_fields` lists the attributes the page carried, so a partial object never blanks the others.

Tenant snapshot (the desired source, committed after a successful apply):
  users:    id, <attributes>, manager_id, tenant_state ("active" | "soft_deleted"),
            in_scope, synced (bools: in scope now; has records, kept disabled once out of scope)
  groups:   id, <attributes>, in_scope
  members:  group_id, member_id, member_type

Directory records (transform -> validate -> plan), one frame per kind:
  anchor, kind, cn, account_name (the derived sAMAccountName before collisions), enabled,
  password_never_expires, must_change_password (passwordProfile's flags), password_changed_at
  (lastPasswordChangeDateTime, ISO text) (users), security_enabled (groups), manager_anchor (users),
  attr:<ldapName>...
  members frame: group_anchor, member_anchor
  Values of `attr:` columns are a string, a list of strings (multi-valued), or None (clear it).

Change set (plan -> apply): `ChangeSet` below, written as JSON plus a readable preview.
Apply results: `ApplyResult` rows, written as JSON lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import pyarrow as pa

USER = "user"
GROUP = "group"
KINDS = (USER, GROUP)

# Staged tenant changes
REMOVED = "_removed"
FIELDS = "_fields"
REMOVED_SOFT = "changed"
REMOVED_HARD = "deleted"
MEMBER_COLUMNS = ["group_id", "member_id", "member_type", "removed"]

# Parquet schemas of the staged frames: the Graph properties as typed columns.
LIST_PROPERTIES = {"businessPhones", "proxyAddresses", "otherMails", "imAddresses", "groupTypes"}
BOOL_PROPERTIES = {"accountEnabled", "securityEnabled", "mailEnabled", "onPremisesSyncEnabled"}
NAVIGATION_PROPERTIES = {"manager", "members"}
# Complex properties staged as one flag: true when any of the named members is true. passwordProfile
# (returned only on $select, its password always null) becomes "must change the password at next sign-in";
# nothing else of it is kept.
FLAG_PROPERTIES = {"passwordProfile": ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa")}


def object_schema(select: list[str]) -> pa.Schema:
    fields = [pa.field("id", pa.string())]
    for name in select:
        if name == "id" or name in NAVIGATION_PROPERTIES:
            continue
        if name in LIST_PROPERTIES:
            fields.append(pa.field(name, pa.list_(pa.string())))
        elif name in BOOL_PROPERTIES or name in FLAG_PROPERTIES:
            fields.append(pa.field(name, pa.bool_()))
        else:
            fields.append(pa.field(name, pa.string()))
    if "manager" in select:
        fields.append(pa.field("manager_id", pa.string()))
    fields += [pa.field(REMOVED, pa.string()), pa.field(FIELDS, pa.string())]
    return pa.schema(fields)


MEMBER_SCHEMA = pa.schema([pa.field(name, pa.bool_() if name == "removed" else pa.string()) for name in MEMBER_COLUMNS])

# Tenant snapshot
TENANT_STATE = "tenant_state"
STATE_ACTIVE = "active"
STATE_SOFT_DELETED = "soft_deleted"
SNAPSHOT_MEMBER_COLUMNS = ["group_id", "member_id", "member_type"]

# Directory records
ATTR_PREFIX = "attr:"
RECORD_BASE_COLUMNS = [
    "anchor", "kind", "cn", "account_name", "enabled", "password_never_expires", "security_enabled",
    "manager_anchor", "must_change_password", "password_changed_at",
]
RECORD_MEMBER_COLUMNS = ["group_anchor", "member_anchor"]

class Op(StrEnum):
    """Change set operations, declared in the order apply runs them (never a dangling reference).
    Renames go before creates: a new object may take the name an existing one moves away from."""

    CREATE_CONTAINER = "create_container"
    RENAME = "rename"
    CREATE = "create"
    MODIFY = "modify"
    ADD_MEMBERS = "add_members"
    REMOVE_MEMBERS = "remove_members"
    DISABLE = "disable"
    DELETE = "delete"

    @property
    def order(self) -> int:
        return _OP_ORDER[self]


_OP_ORDER = {op: index for index, op in enumerate(Op)}


def is_missing(value: Any) -> bool:
    """No value: None, or the NaN pandas uses for a missing scalar."""
    return value is None or (isinstance(value, float) and value != value)


def attr_column(ldap_name: str) -> str:
    return f"{ATTR_PREFIX}{ldap_name}"


@dataclass(slots=True)
class Change:
    """One write the plan asks for. `values` maps attribute -> list of values (replace semantics).

    `guid` is the objectGUID of the object as observed when the plan was made: every write to an
    existing object addresses it by that GUID, never by DN text, so a retried apply cannot land on
    another object that took the name meanwhile. `final_dn`: for the first step of a name swap (to a
    temporary name), where the object ends up; a retry finding it there skips the step."""

    op: Op
    kind: str
    anchor: str
    dn: str
    new_dn: str | None = None
    values: dict[str, list[str]] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    reason: str = ""
    guid: str | None = None
    final_dn: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Shallow (values are plain lists and strings): a deep copy (dataclasses.asdict) costs seconds on a full load.
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) not in (None, "", [], {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Change":
        change = cls(**{"anchor": "", **data})
        change.op = Op(change.op)
        return change


@dataclass
class ChangeSet:
    """Everything one run will write, in apply order, plus what the guards decided."""

    changes: list[Change]
    counts: dict[str, int]
    blocked_reasons: list[str] = field(default_factory=list)
    quarantined: int = 0

    def to_json(self) -> dict[str, Any]:
        return self.head_json() | {"changes": [c.to_json() for c in self.changes]}

    def head_json(self) -> dict[str, Any]:
        """to_json without the changes (written one by one: plan/stage.py)."""
        return {"counts": self.counts, "blocked_reasons": self.blocked_reasons, "quarantined": self.quarantined}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ChangeSet":
        return cls(
            changes=[Change.from_json(c) for c in data["changes"]],
            counts=data["counts"],
            blocked_reasons=data.get("blocked_reasons", []),
            quarantined=data.get("quarantined", 0),
        )


APPLIED = "applied"
ALREADY = "already_in_place"
FAILED = "failed"
SKIPPED = "skipped"  # nothing left to write once the values naming objects whose create failed were dropped


@dataclass
class ApplyResult:
    """Outcome of one change: applied, found already in place (a rerun), or failed with the LDAP code."""

    op: str
    kind: str
    anchor: str
    dn: str
    status: str
    result_code: int | None = None
    message: str = ""
    writes: int = 0
