"""Blast-radius guard: a plan that deletes, disables or removes too much stops before any write.

Like Entra Connect's export deletion threshold (500 by default, MS): per object type, a count
limit, and a share of the synced objects of that type (for types with enough objects to judge).
Memberships are part of the blast radius too: removals are counted in all (count and share of the
synced groups' members) and per group (share of its current members). A member removed because the
plan deletes or disables the object itself counts as that delete, not twice.

A blocked plan is approved by its digest (`plan_digest`: sha256 of its canonical change list): the
run is triggered again with `approve_plan=<digest>` and goes on only when it plans exactly the
changes that were read and approved; a plan with one more delete has another digest.
"""

from __future__ import annotations

import hashlib
import json
import re

from domain_sync.config import Settings
from domain_sync.dn import normalize_dn
from domain_sync.errors import PermanentError
from domain_sync.records import GROUP, KINDS, ChangeSet, Op

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


def member_removals(change_set: ChangeSet) -> dict[str, int]:
    """{group anchor: memberships the plan removes}, without members the plan deletes or disables."""
    leaving = {normalize_dn(c.dn) for c in change_set.changes if c.op in (Op.DELETE, Op.DISABLE)}
    removed: dict[str, int] = {}
    for c in change_set.changes:
        if c.op == Op.REMOVE_MEMBERS and c.kind == GROUP:
            n = sum(1 for m in c.members if normalize_dn(m) not in leaving)
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
                  settings: Settings) -> list[str]:
    """Every reason the plan must not run unapproved: deletes and disables, then member removals."""
    return (deletion_guard(change_set, synced_counts, settings.max_deletes, settings.max_delete_share,
                           settings.delete_share_min_objects)
            + membership_guard(change_set, group_members, settings))


def plan_digest(change_set: ChangeSet) -> str:
    """sha256 (hex) of the canonical change list: the changes in apply order, keys sorted, no spaces."""
    canonical = json.dumps([c.to_json() for c in change_set.changes], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
