"""Which tenant objects the domain holds: all of them, or the members of chosen groups.

Scope (setting `scope_groups`, group ids or display names, comma-separated; empty = everything):
- groups in scope: the chosen groups and every group nested in them, at any depth (Entra Domain
  Services does not follow nesting, MS; we do, and a cycle of groups is harmless);
- users in scope: the members of any group in scope, that is the chosen groups' transitive members.
Lifecycle (Entra Cloud Sync to AD, MS): a user that leaves scope is disabled, not deleted, and stays
synced (disabled) while out of scope; a user never in scope is not created. A group that leaves scope
is deleted from the domain (a group has no sign-in to disable). The deletion guard bounds both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from domain_sync.columns import isin, objects
from domain_sync.mapping import MappingError

# Snapshot columns the scope adds (records.py): whether an object is in scope, and for users whether
# they have been synced (so that one that leaves scope is kept, disabled).
IN_SCOPE = "in_scope"
SYNCED = "synced"


class ScopeError(MappingError):
    """The scope setting names groups the tenant does not have (or not unambiguously): a setting error,
    which a retry cannot fix."""


def _ids(frame: pd.DataFrame) -> set[str]:
    return set(objects(frame["id"])) if len(frame) else set()


def parse_scope_setting(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def resolve_scope_groups(groups: pd.DataFrame, names: Iterable[str]) -> set[str]:
    """Group ids for the setting's entries: each an id, or a display name (without case) that exactly
    one group has."""
    ids = _ids(groups)
    display = groups["displayName"] if "displayName" in groups.columns else pd.Series([], dtype=object)
    by_name: dict[str, list[str]] = {}
    for group_id, name in zip(objects(groups["id"]), objects(display), strict=True):
        if isinstance(name, str):
            by_name.setdefault(name.casefold(), []).append(group_id)
    chosen, problems = set(), []
    for entry in names:
        if entry in ids:
            chosen.add(entry)
            continue
        matches = by_name.get(entry.casefold(), [])
        if len(matches) == 1:
            chosen.add(matches[0])
        elif matches:
            problems.append(f"'{entry}' names {len(matches)} groups ({', '.join(sorted(matches))}); use the id")
        else:
            problems.append(f"'{entry}' is neither the id nor the display name of a group in the tenant")
    if problems:
        raise ScopeError("scope setting DOMAIN_SYNC_SCOPE_GROUPS: " + "; ".join(problems))
    return chosen


def nested_groups(roots: Iterable[str], members: pd.DataFrame, group_ids: set[str]) -> set[str]:
    """The roots and every group reachable from them through memberships (cycles included once)."""
    edges = members[isin(members["member_id"], group_ids)]
    children: dict[str, list[str]] = {}
    for parent, child in zip(edges["group_id"], edges["member_id"], strict=True):
        children.setdefault(parent, []).append(child)
    seen = set(roots)
    todo = list(seen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@dataclass
class Scope:
    """The objects in scope now, and how that differs from the previous committed snapshot."""

    all_objects: bool
    roots: set[str]
    users: set[str]
    groups: set[str]
    synced_users: set[str]
    preview: dict[str, int | str | list[str]] = field(default_factory=dict)
    # Ids of the users and groups entering or leaving scope in this run (a scope group's membership changed):
    # their creates and disables come from the tenant, not from drift in the domain.
    changed: set[str] = field(default_factory=set)


def previous_scope(snapshot: pd.DataFrame | None, column: str) -> set[str]:
    """Ids the previous snapshot marks with `column`; a snapshot from before scoping existed held
    everything in scope."""
    if snapshot is None or snapshot.empty:
        return set()
    if column not in snapshot.columns:
        return _ids(snapshot)
    marked = objects(snapshot[column]).fillna(False).astype(bool).to_numpy()
    return set(objects(snapshot["id"])[marked])


def compute_scope(
    users: pd.DataFrame,
    groups: pd.DataFrame,
    members: pd.DataFrame,
    setting: str | None,
    previous_users: pd.DataFrame | None = None,
    previous_groups: pd.DataFrame | None = None,
) -> Scope:
    user_ids, group_ids = _ids(users), _ids(groups)
    names = parse_scope_setting(setting)
    if not names:
        roots: set[str] = set()
        in_users, in_groups = user_ids, group_ids
    else:
        roots = resolve_scope_groups(groups, names)
        in_groups = nested_groups(roots, members, group_ids)
        in_users = set(members.loc[isin(members["group_id"], in_groups), "member_id"]) & user_ids
    was_users = previous_scope(previous_users, IN_SCOPE)
    was_groups = previous_scope(previous_groups, IN_SCOPE)
    synced = (in_users | (previous_scope(previous_users, SYNCED) & user_ids))
    preview = {
        "mode": "groups" if names else "all",
        "scope_groups": sorted(roots),
        "users_in_scope": len(in_users),
        "groups_in_scope": len(in_groups),
        "users_entering": len(in_users - was_users),
        "users_leaving": len((was_users & user_ids) - in_users),
        "groups_entering": len(in_groups - was_groups),
        "groups_leaving": len((was_groups & group_ids) - in_groups),
        "users_out_of_scope_kept_disabled": len(synced - in_users),
    }
    changed = ((in_users ^ was_users) & user_ids) | ((in_groups ^ was_groups) & group_ids)
    return Scope(not names, roots, in_users, in_groups, synced, preview, changed)


def mark_scope(users: pd.DataFrame, groups: pd.DataFrame, scope: Scope) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The snapshot frames with the scope columns set (committed with them)."""
    users = users.assign(**{IN_SCOPE: isin(users["id"], scope.users), SYNCED: isin(users["id"], scope.synced_users)})
    groups = groups.assign(**{IN_SCOPE: isin(groups["id"], scope.groups)})
    return users, groups
