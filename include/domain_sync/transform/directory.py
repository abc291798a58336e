"""Tenant snapshot -> directory records: what the domain should hold for each synced object.

Lifecycle (Entra Cloud Sync to AD, DESIGN.md section 3): a soft-deleted user stays, disabled; a
hard-deleted user or a deleted group is absent from the snapshot and so from the records (the plan
deletes it); a removed member is absent from the members frame.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from domain_sync.records import (
    GROUP,
    RECORD_BASE_COLUMNS,
    RECORD_MEMBER_COLUMNS,
    STATE_ACTIVE,
    TENANT_STATE,
    USER,
    attr_column,
)
from domain_sync.transform.mapping import Mapping, fit_value
from domain_sync.transform.naming import account_name_base, cn_base

DONT_EXPIRE = "DisablePasswordExpiration"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _flag(value: Any, default: bool = False) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return default
    return bool(value)


def _as_list(value: Any) -> list | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return [str(v) for v in list(value) if v is not None]
    return [str(value)]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _mapped_attributes(frame: pd.DataFrame, mapping: Mapping, kind: str) -> dict[str, list]:
    columns: dict[str, list] = {}
    for rule in mapping.rules(kind):
        values = []
        for raw in _column(frame, rule.source).tolist():
            value = rule.convert(raw)
            if rule.multi:
                value = _as_list(value)
            elif isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
                value = "; ".join(str(v) for v in list(value)) or None
            values.append(fit_value(rule.target, value))
        columns[attr_column(rule.target)] = values
    return columns


def user_records(users: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    ids = users["id"].astype(str).tolist()
    display = _column(users, "displayName").tolist()
    nick = _column(users, "mailNickname").tolist()
    upn = _column(users, "userPrincipalName").tolist()
    enabled_raw = _column(users, "accountEnabled").tolist()
    state = _column(users, TENANT_STATE).tolist()
    policies = _column(users, "passwordPolicies").tolist()
    sources = [_text(n) or (_text(u) or "").split("@")[0] for n, u in zip(nick, upn)]
    record = {
        "anchor": ids,
        "kind": [USER] * len(ids),
        "cn": [cn_base(_text(d), s or a) for d, s, a in zip(display, sources, ids)],
        "account_name": [account_name_base(s, a, USER) for s, a in zip(sources, ids)],
        "enabled": [_flag(e) and st in (None, STATE_ACTIVE) for e, st in zip(enabled_raw, state)],
        "password_never_expires": [DONT_EXPIRE in (_text(p) or "") for p in policies],
        "security_enabled": [None] * len(ids),
        "manager_anchor": [_text(m) for m in _column(users, "manager_id").tolist()],
    }
    record.update(_mapped_attributes(users, mapping, USER))
    return pd.DataFrame(record, columns=RECORD_BASE_COLUMNS + [attr_column(t) for t in mapping.targets(USER)])


def group_records(groups: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    ids = groups["id"].astype(str).tolist()
    display = _column(groups, "displayName").tolist()
    security = _column(groups, "securityEnabled").tolist()
    record = {
        "anchor": ids,
        "kind": [GROUP] * len(ids),
        "cn": [cn_base(_text(d), a) for d, a in zip(display, ids)],
        "account_name": [account_name_base(_text(d), a, GROUP) for d, a in zip(display, ids)],
        "enabled": [None] * len(ids),
        "password_never_expires": [None] * len(ids),
        "security_enabled": [_flag(s, default=True) for s in security],
        "manager_anchor": [None] * len(ids),
    }
    record.update(_mapped_attributes(groups, mapping, GROUP))
    return pd.DataFrame(record, columns=RECORD_BASE_COLUMNS + [attr_column(t) for t in mapping.targets(GROUP)])


def member_records(members: pd.DataFrame, known_anchors: set[str]) -> pd.DataFrame:
    """Memberships whose both ends are synced objects; the others cannot be written as DNs."""
    frame = members.rename(columns={"group_id": "group_anchor", "member_id": "member_anchor"})
    keep = frame["group_anchor"].isin(known_anchors) & frame["member_anchor"].isin(known_anchors)
    return frame.loc[keep, RECORD_MEMBER_COLUMNS].reset_index(drop=True)


def to_directory_records(
    users: pd.DataFrame, groups: pd.DataFrame, members: pd.DataFrame, mapping: Mapping
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    user_frame = user_records(users, mapping)
    group_frame = group_records(groups, mapping)
    anchors = set(user_frame["anchor"]) | set(group_frame["anchor"])
    return user_frame, group_frame, member_records(members, anchors)
