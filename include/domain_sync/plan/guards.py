"""Blast-radius guard: a plan that deletes, disables or removes too much, or creates too much while the
sync may not recognise its own objects, stops before any write.

Like Entra Connect's export deletion threshold (500 by default, MS): per object type, a count
limit, and a share of the synced objects of that type (for types with enough objects to judge).
Memberships are part of the blast radius too: removals are counted in all (count and share of the
synced groups' members) and per group (share of its current members). A member the plan deletes has
no removals (the domain drops its links with it): it counts as that delete; a member removed because the
plan disables it counts as that disable, not twice.

Creates are judged only when the domain shows the sync may not see its own objects (anchored objects
without this sync's marker, or a committed state while no synced object is found): then more than
`max_creates`, or more than `max_create_share` of the tenant objects in the domain, blocks the plan,
with the setting that probably changed named in the reason. More objects of this sync outside the search
base than inside it block the plan as well, whatever it creates: the search base or the container changed,
and every object would be held as outside (a single object moved out by hand among many is only held).

A blocked plan is approved by its digest (`plan_digest`: sha256 of its canonical change list): the
run is triggered again with `approve_plan=<digest>` and goes on only when it plans exactly the
changes that were read and approved; a plan with one more delete has another digest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from domain_sync.config import Settings
from domain_sync.dn import guid_dn, member_key, normalize_dn
from domain_sync.errors import PermanentError
from domain_sync.records import GROUP, KINDS, ChangeSet, Op
from domain_sync.storage import json_array_text

DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def deletion_guard(
    change_set: ChangeSet,
    synced_counts: dict[str, int],
    max_deletes: int,
    max_share: float,
    share_min_objects: int,
) -> list[str]:
    """Reasons the plan's deletes and disables must not run unapproved (empty: they may)."""
    reasons = []
    for kind in KINDS:
        destructive = sum(1 for c in change_set.changes if c.kind == kind and c.op in (Op.DELETE, Op.DISABLE))
        total = synced_counts.get(kind, 0)
        if destructive > max_deletes:
            reasons.append(
                f"{destructive} {kind}s would be deleted or disabled, more than the limit of {max_deletes}"
            )
        elif total >= share_min_objects and total and destructive / total > max_share:
            reasons.append(
                f"{destructive} of {total} synced {kind}s ({destructive / total:.0%}) would be deleted or "
                f"disabled, more than the limit of {max_share:.0%}"
            )
    return reasons


@dataclass
class OwnershipSigns:
    """What tells whether the sync sees its own objects: anchored objects under the search base without
    this sync's marker, synced objects observed, and tenant objects in the committed state."""

    unmarked: int
    observed: int
    committed: int
    anchor_attribute: str
    owner_attribute: str
    search_base: str
    # Objects with this sync's marker outside the search base (searched only when the plan has creates to judge).
    outside: int = 0


def creation_guard(change_set: ChangeSet, signs: OwnershipSigns, settings: Settings) -> list[str]:
    """Reasons the plan's creates must not run unapproved: many creates while the domain holds objects with
    the anchor but not our marker, or while the committed state holds objects and none is observed, mean
    that the sync no longer recognises what it made (a changed anchor, owner or search base setting); the
    creates would be a duplicate of every object."""
    creates = sum(1 for c in change_set.changes if c.op == Op.CREATE)
    total = creates + signs.observed
    share, minimum = settings.max_create_share, settings.create_share_min_objects
    if creates > settings.max_creates:
        size = (f"{creates} objects would be created, more than the limit of {settings.max_creates} "
                f"(setting max_creates)")
    elif total >= minimum and total and creates / total > share:
        size = (f"{creates} of the {total} tenant objects in the domain ({creates / total:.0%}) would be created, "
                f"more than the limit of {share:.0%} (setting max_create_share)")
    else:
        return []
    reasons = []
    if signs.unmarked:
        reasons.append(f"{size}, while {signs.unmarked} objects under {signs.search_base} carry "
                       f"{signs.anchor_attribute} without this sync's marker in {signs.owner_attribute}: the owner "
                       f"attribute or marker (DOMAIN_SYNC_OWNER_ATTRIBUTE, DOMAIN_SYNC_OWNER_MARKER) or the anchor "
                       f"attribute (DOMAIN_SYNC_ANCHOR_ATTRIBUTE) probably changed, and the creates would duplicate "
                       f"those objects")
    if signs.committed and not signs.observed:
        reasons.append(f"{size}, while the committed state holds {signs.committed} tenant objects and no synced "
                       f"object is found under {signs.search_base}: the search base or the container "
                       f"(DOMAIN_SYNC_SEARCH_BASE, DOMAIN_SYNC_CONTAINER), the anchor attribute or the owner "
                       f"settings probably changed, and the creates would duplicate the synced objects")
    return reasons


def search_base_guard(signs: OwnershipSigns) -> list[str]:
    """A reason to stop when the sync's own objects outside the search base outnumber those inside it: the
    search base or container setting changed, and the plan would hold (or, without the marker search, create
    again) every object. Fewer outside than inside are objects moved out by hand: held, reported, no stop."""
    if not signs.outside or signs.outside <= signs.observed:
        return []
    return [f"{signs.outside} objects with this sync's marker are outside the search base {signs.search_base}, "
            f"more than the {signs.observed} synced objects inside it: the search base or the container "
            f"(DOMAIN_SYNC_SEARCH_BASE, DOMAIN_SYNC_CONTAINER) probably changed; the objects outside are held "
            f"(not written, not created again) until the setting is put back or they are moved under it"]


def member_removals(change_set: ChangeSet) -> dict[str, int]:
    """{group anchor: memberships the plan removes}, without members the plan deletes or disables."""
    leaving = {normalize_dn(c.dn) for c in change_set.changes if c.op in (Op.DELETE, Op.DISABLE)}
    leaving |= {guid_dn(c.guid).lower() for c in change_set.changes if c.op in (Op.DELETE, Op.DISABLE) and c.guid}
    removed: dict[str, int] = {}
    for c in change_set.changes:
        if c.op == Op.REMOVE_MEMBERS and c.kind == GROUP:
            n = sum(1 for m in c.members if member_key(m) not in leaving)
            if n:
                removed[c.anchor] = removed.get(c.anchor, 0) + n
    return removed


def membership_guard(change_set: ChangeSet, group_members: dict[str, int], settings: Settings) -> list[str]:
    """Reasons the plan's member removals must not run unapproved. `group_members`: {group anchor:
    its current member count in the domain} of every synced group. Settings range-checks the limits."""
    removed = member_removals(change_set)
    reasons = []
    total_removed = sum(removed.values())
    total_members = sum(group_members.values())
    share, minimum = settings.max_member_removal_share, settings.member_removal_share_min_members
    if total_removed > settings.max_member_removals:
        reasons.append(f"{total_removed} memberships would be removed, more than the limit of "
                       f"{settings.max_member_removals} (setting max_member_removals)")
    elif total_members >= minimum and total_members and total_removed / total_members > share:
        reasons.append(f"{total_removed} of the {total_members} memberships of synced groups "
                       f"({total_removed / total_members:.0%}) would be removed, more than the limit of {share:.0%} "
                       f"(setting max_member_removal_share)")
    over = sorted((anchor, n, group_members.get(anchor, 0)) for anchor, n in removed.items()
                  if group_members.get(anchor, 0) >= minimum and group_members.get(anchor, 0)
                  and n / group_members[anchor] > share)
    for anchor, n, current in over[:20]:
        reasons.append(f"{n} of the {current} members of group {anchor} ({n / current:.0%}) would be removed, "
                       f"more than the limit of {share:.0%} (setting max_member_removal_share)")
    if len(over) > 20:
        reasons.append(f"... and {len(over) - 20} more groups over the member removal limit")
    return reasons


def guard_reasons(change_set: ChangeSet, synced_counts: dict[str, int], group_members: dict[str, int],
                  settings: Settings, signs: OwnershipSigns | None = None) -> list[str]:
    """Every reason the plan must not run unapproved: deletes and disables, creates and objects outside the
    search base (with `signs`), then member removals."""
    return (deletion_guard(change_set, synced_counts, settings.max_deletes, settings.max_delete_share,
                           settings.delete_share_min_objects)
            + (creation_guard(change_set, signs, settings) + search_base_guard(signs) if signs is not None else [])
            + membership_guard(change_set, group_members, settings))


def plan_digest(change_set: ChangeSet) -> str:
    """sha256 (hex) of the canonical change list: the changes in apply order, keys sorted, no spaces."""
    # The text of json.dumps(the list), hashed piece by piece: a plan of 100,000s of changes is never one text.
    digest = hashlib.sha256()
    for text in json_array_text((c.to_json() for c in change_set.changes), sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False, default=str):
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()


class ApprovalInvalid(PermanentError):
    """`approve_plan` is not a plan digest."""


def approved_digest(params: dict) -> str | None:
    """The digest the run was triggered with (`approve_plan`), checked; None when there is none."""
    value = params.get("approve_plan")
    if value in (None, ""):
        return None
    digest = str(value).strip().lower()
    if not DIGEST_PATTERN.match(digest):
        raise ApprovalInvalid(f"approve_plan={value!r} is not a plan digest (64 hex digits, as plan/plan.txt and "
                              f"the blocked run's error show it)")
    return digest


def approval_status(blocked_reasons: list[str], digest: str, approved: str | None) -> str:
    """"clear" (nothing to approve), "approved" (blocked, and this very plan was approved) or "blocked"."""
    if not blocked_reasons:
        return "clear"
    return "approved" if approved == digest else "blocked"
