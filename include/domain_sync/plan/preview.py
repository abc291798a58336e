"""The plan as a person reads it: LDIF-like text, one block per change, no secrets."""

from __future__ import annotations

from collections.abc import Iterator

from domain_sync.dn import first_rdn, parent_dn
from domain_sync.records import (
    ChangeSet,
    Op,
)


def preview_lines(change_set: ChangeSet, header: str = "") -> Iterator[str]:
    """The preview line by line, change by change (a first sync's preview is hundreds of MB: written as made)."""
    lines: list[str] = []
    if header:
        lines += [f"# {line}" for line in header.splitlines()]
    lines.append("# counts: " + (", ".join(f"{k}={v}" for k, v in change_set.counts.items()) or "no changes"))
    for reason in change_set.blocked_reasons:
        lines.append(f"# BLOCKED: {reason}")
    for c in change_set.changes:
        yield from lines
        lines = [""]
        lines.append(f"# {c.op} {c.kind} {c.anchor}".rstrip() + (f" ({c.reason})" if c.reason else ""))
        if c.guid:
            lines.append(f"# objectGUID {c.guid}")
        lines.append(f"dn: {c.dn}")
        if c.op in (Op.CREATE, Op.CREATE_CONTAINER):
            lines.append("changetype: add")
            for name, values in c.values.items():
                lines += [f"{name}: {v}" for v in values]
        elif c.op == Op.DELETE:
            lines.append("changetype: delete")
        elif c.op == Op.RENAME:
            lines += ["changetype: modrdn", f"newrdn: {first_rdn(c.new_dn)}", "deleteoldrdn: 1",
                      f"newsuperior: {parent_dn(c.new_dn)}"]
        elif c.op in (Op.ADD_MEMBERS, Op.REMOVE_MEMBERS):
            verb = "add" if c.op == Op.ADD_MEMBERS else "delete"
            lines += ["changetype: modify", f"{verb}: member"] + [f"member: {m}" for m in c.members] + ["-"]
        else:
            lines.append("changetype: modify")
            for name, values in c.values.items():
                if values:
                    lines += [f"replace: {name}"] + [f"{name}: {v}" for v in values] + ["-"]
                else:
                    lines += [f"delete: {name}", "-"]
    yield from lines
