"""Tenant snapshot -> directory records: what the domain should hold for each synced object.

Lifecycle (Entra Cloud Sync to AD, DESIGN.md section 3): a soft-deleted user stays, disabled; a user
out of scope stays, disabled, once synced (transform/scope.py); a hard-deleted user or a deleted or
out-of-scope group is absent from the records (the plan deletes it); a removed member is absent from
the members frame. Computed column-wise; values are fitted to the domain's schema (values.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from domain_sync.columns import isin, objects
from domain_sync.domain_schema import DEFAULT_SCHEMA, AttributeSchema, DomainSchema
from domain_sync.mapping import FUNCTIONS, AttributeRule, Mapping
from domain_sync.naming import account_name_bases, cn_bases
from domain_sync.records import (
    GROUP,
    RECORD_BASE_COLUMNS,
    RECORD_MEMBER_COLUMNS,
    STATE_ACTIVE,
    TENANT_STATE,
    USER,
    attr_column,
)
from domain_sync.values import Fix, fit_multi_series, fit_series

if TYPE_CHECKING:
    from domain_sync.transform.incremental import KeptRecords

DONT_EXPIRE = "DisablePasswordExpiration"


@dataclass
class Records:
    users: pd.DataFrame
    groups: pd.DataFrame
    members: pd.DataFrame
    # Values cut or dropped to fit the schema, per kind (Fix.row = position in that kind's records)
    fixes: dict[str, list[Fix]] = field(default_factory=dict)
    # Memberships left out, by reason: "unknown_object" (not in the tenant snapshot: devices, contacts,
    # dangling ids) or "out_of_scope"
    dropped_memberships: dict[str, int] = field(default_factory=dict)
    # Memberships of devices, service principals, org contacts... by Graph member type: never in the domain.
    other_member_types: dict[str, int] = field(default_factory=dict)
    # The objects whose records were made (None: every one; else the others are kept records)
    remade: set[str] | None = None


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return objects(frame[name])
    return pd.Series([None] * len(frame), dtype=object)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or hasattr(value, "tolist")


def _join(value: Any) -> Any:
    """A list given to a single-valued attribute: its values joined with "; "."""
    if not _is_list(value):
        return value
    return "; ".join(str(v) for v in list(value)) or None


def _flags(values: pd.Series, default: bool) -> np.ndarray:
    return np.array([default if v is None or v != v else bool(v) for v in values], dtype=bool)


def mapped_column(frame: pd.DataFrame, rule: AttributeRule, attribute: AttributeSchema) -> tuple[pd.Series, list[Fix]]:
    values = _column(frame, rule.source)
    if rule.function:
        values = values.map(FUNCTIONS[rule.function], na_action="ignore")
    if rule.multi:
        return fit_multi_series(values, attribute, rule.too_long)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "boolean", "integer", "empty"):
        values = values.map(_join, na_action="ignore")
    return fit_series(values, attribute, rule.too_long)


def _mapped_attributes(frame: pd.DataFrame, mapping: Mapping, kind: str, schema: DomainSchema,
                       fixes: list[Fix]) -> dict[str, np.ndarray]:
    columns = {}
    for rule in mapping.rules(kind):
        attribute = schema.attribute(rule.target) or AttributeSchema(rule.target)
        values, rule_fixes = mapped_column(frame, rule, attribute)
        fixes.extend(rule_fixes)
        columns[attr_column(rule.target)] = values.to_numpy(dtype=object)
    return columns


def _record_columns(mapping: Mapping, kind: str) -> list[str]:
    return RECORD_BASE_COLUMNS + [attr_column(t) for t in mapping.targets(kind)]


def _frame(record: dict[str, Any], mapping: Mapping, kind: str) -> pd.DataFrame:
    columns = _record_columns(mapping, kind)
    return pd.DataFrame({c: record[c] for c in columns}, columns=columns)


def user_records(users: pd.DataFrame, mapping: Mapping, schema: DomainSchema = DEFAULT_SCHEMA,
                 fixes: list[Fix] | None = None) -> pd.DataFrame:
    """Records of the given users; `enabled` needs accountEnabled, an active tenant state and, when
    the frame has it, the scope's `in_scope`."""
    fixes = [] if fixes is None else fixes
    ids = _column(users, "id").astype(str)
    nick = _column(users, "mailNickname")
    upn = _column(users, "userPrincipalName")
    upn_local = upn.map(lambda u: str(u).split("@")[0], na_action="ignore")
    sources = nick.where(nick.notna() & (nick != ""), upn_local)
    state = _column(users, TENANT_STATE)
    active = (state.isna() | (state == STATE_ACTIVE)).to_numpy(dtype=bool)
    in_scope = _flags(_column(users, "in_scope"), True)
    policies = _column(users, "passwordPolicies")
    never_expires = policies.map(lambda p: DONT_EXPIRE in str(p), na_action="ignore").fillna(False)
    manager = _column(users, "manager_id")
    changed_at = _column(users, "lastPasswordChangeDateTime")
    record = {
        "anchor": ids.to_numpy(dtype=object),
        "kind": np.full(len(ids), USER, dtype=object),
        "cn": cn_bases(_column(users, "displayName"), sources.where(sources.notna() & (sources != ""), ids)),
        "account_name": account_name_bases(sources, ids, USER),
        "enabled": _flags(_column(users, "accountEnabled"), False) & active & in_scope,
        "password_never_expires": never_expires.to_numpy(dtype=bool),
        "security_enabled": np.full(len(ids), None, dtype=object),
        "manager_anchor": manager.where(manager.notna(), None).to_numpy(dtype=object),
        # passwordProfile.forceChangePasswordNextSignIn (or ...WithMfa): the plan sets pwdLastSet = 0 when the
        # tenant asked for it after the domain's password was last set (plan/changeset.py, must_change_now)
        "must_change_password": _flags(_column(users, "passwordProfile"), False),
        "password_changed_at": np.array([v if isinstance(v, str) and v else None for v in changed_at], dtype=object),
    }
    record.update(_mapped_attributes(users, mapping, USER, schema, fixes))
    return _frame(record, mapping, USER)


def group_records(groups: pd.DataFrame, mapping: Mapping, schema: DomainSchema = DEFAULT_SCHEMA,
                  fixes: list[Fix] | None = None) -> pd.DataFrame:
    fixes = [] if fixes is None else fixes
    ids = _column(groups, "id").astype(str)
    display = _column(groups, "displayName")
    none = np.full(len(ids), None, dtype=object)
    record = {
        "anchor": ids.to_numpy(dtype=object),
        "kind": np.full(len(ids), GROUP, dtype=object),
        "cn": cn_bases(display, ids),
        "account_name": account_name_bases(display, ids, GROUP),
        "enabled": none,
        "password_never_expires": none,
        "security_enabled": _flags(_column(groups, "securityEnabled"), True),
        "manager_anchor": none,
        "must_change_password": none,
        "password_changed_at": none,
    }
    record.update(_mapped_attributes(groups, mapping, GROUP, schema, fixes))
    return _frame(record, mapping, GROUP)


# Graph member types that become members in the domain (devices, service principals, org contacts do not).
PRINCIPAL_MEMBER_TYPES = {"user", "group"}


def member_records(members: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The memberships `keep` marks (both ends synced objects: the others cannot be written as DNs), as
    records."""
    frame = members.rename(columns={"group_id": "group_anchor", "member_id": "member_anchor"})
    return frame.loc[keep, RECORD_MEMBER_COLUMNS].reset_index(drop=True)


def _synced(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in frame.columns:
        return frame
    return frame[_flags(_column(frame, column), True)].reset_index(drop=True)


def _records_of(make, kind: str, objects_frame: pd.DataFrame, mapping: Mapping, schema: DomainSchema,
                fixes: list[Fix], kept: pd.DataFrame | None, changed: set[str], remade: set[str]) -> pd.DataFrame:
    """`make`'s records of `objects_frame`; with `kept` (the committed records), only those of the objects in
    `changed` or without a kept record are made (their ids added to `remade`), the others are the kept rows,
    in `objects_frame`'s order (fixes point at rows of the result)."""
    if kept is None:
        return make(objects_frame, mapping, schema, fixes)
    ids = _column(objects_frame, "id").astype(str).to_numpy(dtype=object)
    made_fixes: list[Fix] = []
    if list(kept.columns) != _record_columns(mapping, kind):
        # Kept records of other columns (the fingerprint holds the mapping, so not expected): every one is made.
        remade.update(ids)
        return make(objects_frame, mapping, schema, fixes)
    in_kept = pd.Index(objects(kept["anchor"]).to_numpy()).get_indexer(ids)  # -1: no kept record
    remake = isin(ids, changed) | (in_kept < 0)
    remade.update(ids[remake])
    made = make(objects_frame[remake].reset_index(drop=True), mapping, schema, made_fixes)
    made_rows = np.flatnonzero(remake)  # where each made row lands in the result
    if not len(ids):
        return made
    if not len(made):
        return kept.take(in_kept).reset_index(drop=True)
    # Each row taken from the kept records or the made ones (after them), in objects_frame's order.
    at = in_kept.copy()
    at[made_rows] = len(kept) + np.arange(len(made_rows))
    result = pd.concat([kept, made], ignore_index=True).take(at).reset_index(drop=True)
    fixes.extend(replace(f, row=int(made_rows[f.row])) for f in made_fixes)
    return result


def directory_records(users: pd.DataFrame, groups: pd.DataFrame, members: pd.DataFrame, mapping: Mapping,
                      schema: DomainSchema = DEFAULT_SCHEMA, kept: KeptRecords | None = None) -> Records:
    """Records of the synced users (in scope, or synced before and now out of scope: disabled) and of
    the groups in scope, with the memberships between them. With `kept` (transform/incremental.py), the
    records of the objects it does not name as changed are the committed ones."""
    user_fixes: list[Fix] = []
    group_fixes: list[Fix] = []
    changed = kept.changed if kept is not None else set()
    remade: set[str] = set()
    user_frame = _records_of(user_records, USER, _synced(users, "synced"), mapping, schema, user_fixes,
                             kept.users if kept is not None else None, changed, remade)
    group_frame = _records_of(group_records, GROUP, _synced(groups, "in_scope"), mapping, schema, group_fixes,
                              kept.groups if kept is not None else None, changed, remade)
    anchors = set(user_frame["anchor"].tolist()) | set(group_frame["anchor"].tolist())
    principal = (isin(members["member_type"], PRINCIPAL_MEMBER_TYPES) if "member_type" in members.columns
                 else np.ones(len(members), dtype=bool))
    not_principals = int((~principal).sum())
    # Devices, service principals, org contacts...: counted per Graph type, never members in the domain.
    other_types = ({str(k): int(v) for k, v in members.loc[~principal, "member_type"].value_counts().items()}
                   if "member_type" in members.columns and not_principals else {})
    members = members[principal]
    synced_ends = isin(members["group_id"], anchors) & isin(members["member_id"], anchors)
    member_frame = member_records(members, synced_ends)
    tenant = set(objects(users["id"])) | set(objects(groups["id"]))
    left_out = members[~synced_ends]
    unknown = int((~isin(left_out["group_id"], tenant) | ~isin(left_out["member_id"], tenant)).sum())
    return Records(user_frame, group_frame, member_frame, {USER: user_fixes, GROUP: group_fixes},
                   {"unknown_object": unknown, "out_of_scope": len(left_out) - unknown,
                    "not_user_or_group": not_principals}, other_types, remade if kept is not None else None)
