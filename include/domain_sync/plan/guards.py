"""Blast-radius guard: a plan that deletes or disables too much stops before any write.

Like Entra Connect's export deletion threshold (500 by default, MS): per object type, a count
limit, and a share of the synced objects of that type (for types with enough objects to judge).
An operator approves one run explicitly (the DAG's `approve_deletions` param).
"""

from __future__ import annotations

from domain_sync.records import KINDS, ChangeSet, Op


def deletion_guard(
    change_set: ChangeSet,
    synced_counts: dict[str, int],
    max_deletes: int,
    max_share: float,
    share_min_objects: int,
) -> list[str]:
    """Reasons the plan must not run unapproved (empty: it may)."""
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
