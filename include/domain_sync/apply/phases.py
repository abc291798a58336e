"""The phases of a batched apply, in the order they run: the DAG builds one mapped task per phase from
this list (domain_sync.tasks.apply_tasks), so it imports nothing heavy.

Each phase is (name, operation): the plan orders its changes by operation (records.Op), except that a
delete or a modify that frees a name another write of the plan takes goes before the renames and creates
(plan/changeset.py); those runs of changes get phases of their own. A plan's runs of one operation fill
the phases in this order (apply/batches.py); a phase the plan has no change for stays empty.
"""

from __future__ import annotations

PHASES: tuple[tuple[str, str], ...] = (
    ("containers", "create_container"),
    ("deletes_freeing_names", "delete"),
    ("modifies_freeing_names", "modify"),
    ("renames", "rename"),
    ("creates", "create"),
    ("modifies", "modify"),
    ("member_adds", "add_members"),
    ("member_removes", "remove_members"),
    ("disables", "disable"),
    ("deletes", "delete"),
)
PHASE_NAMES: tuple[str, ...] = tuple(name for name, _ in PHASES)

# Params the DAG fixes on its apply tasks (not DAG params): the batch a mapped task writes, and "apply merges
# the batches' results" (instead of writing the whole change set itself).
BATCH_PARAM = "apply_batch"
MERGE_PARAM = "apply_merge_batches"
