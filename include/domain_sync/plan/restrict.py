"""The on-demand sync's filter: a plan restricted to chosen tenant objects (the `object_ids` param).

The plan is made as always (the whole tenant snapshot against the domain), then only the changes of
the chosen objects (by anchor: the tenant object id) are kept, with the containers they need. A kept
group's new members that are not chosen and not yet in the domain are left out of its member adds
(their DN does not exist yet); the next full or incremental run adds them. The guards then judge the
restricted plan. Committing the run's state stays right: such a run leaves no domain index, so the next
run is a full reconcile (plan/incremental.py) and writes what this run left out.
"""

from __future__ import annotations

import re

from domain_sync.config import SettingsError
from domain_sync.naming import is_object_id
from domain_sync.plan.changeset import count_changes
from domain_sync.records import ChangeSet, Op

MAX_OBJECTS = 50


def chosen_objects(params: dict) -> set[str] | None:
    """The tenant object ids of `object_ids` (a list, or text separated by commas, blanks or lines), lower-cased;
    None when the run is not restricted."""
    raw = params.get("object_ids")
    if raw in (None, "", []):
        return None
    items = re.split(r"[\s,]+", raw) if isinstance(raw, str) else [str(i) for i in raw]
    ids = {i.strip().lower() for i in items if i.strip()}
    bad = sorted(i for i in ids if not is_object_id(i))
    if bad:
        raise SettingsError(f"object_ids: {bad[:5]} are not tenant object ids (GUIDs)")
    if len(ids) > MAX_OBJECTS:
        raise SettingsError(f"object_ids: {len(ids)} objects, at most {MAX_OBJECTS} per on-demand run")
    return ids


def restrict_to_objects(change_set: ChangeSet, anchors: set[str]) -> ChangeSet:
    """The changes of `anchors` only, with the containers they need, in the same order."""
    keep = {a.lower() for a in anchors}
    kept = [c for c in change_set.changes if c.anchor and c.anchor.lower() in keep]
    left_out_creates = {c.dn.lower() for c in change_set.changes
                        if c.op == Op.CREATE and c.anchor and c.anchor.lower() not in keep}
    for change in kept:
        if change.op == Op.ADD_MEMBERS and left_out_creates:
            change.members = [m for m in change.members if m.lower() not in left_out_creates]
    kept = [c for c in kept if c.op != Op.ADD_MEMBERS or c.members]
    needed = {c.dn.lower() for c in kept} | {(c.new_dn or "").lower() for c in kept}
    containers = [c for c in change_set.changes if c.op == Op.CREATE_CONTAINER
                  and any(dn.endswith(c.dn.lower()) for dn in needed if dn)]
    chosen = {id(c) for c in (*containers, *kept)}
    changes = [c for c in change_set.changes if id(c) in chosen]
    return ChangeSet(changes=changes, counts=count_changes(changes), blocked_reasons=list(change_set.blocked_reasons),
                     quarantined=change_set.quarantined)
