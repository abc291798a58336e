"""The plan as a person reads it (plan/preview.py), written line by line (storage.write_lines)."""

from __future__ import annotations

import pytest

from domain_sync.plan.preview import preview_lines
from domain_sync.records import Change, ChangeSet, Op
from domain_sync.storage import write_lines

C = "OU=Synced,DC=corp,DC=example,DC=test"


def change_set() -> ChangeSet:
    return ChangeSet([
        Change(Op.CREATE, "user", "a1", f"CN=Ana,{C}", values={"objectClass": ["user"], "cn": ["Ana"]},
               reason="initial password"),
        Change(Op.RENAME, "user", "a2", f"CN=Bob,{C}", new_dn=f"CN=Rob,{C}", guid="g2"),
        Change(Op.MODIFY, "user", "a3", f"CN=Cy,{C}", values={"title": ["Boss"], "mobile": []}, guid="g3"),
        Change(Op.ADD_MEMBERS, "group", "g1", f"CN=Team,{C}", members=[f"CN=Ana,{C}"], guid="g4"),
        Change(Op.DELETE, "user", "a4", f"CN=Dee,{C}", reason="not in the tenant", guid="g5"),
    ], {"user.create": 1}, blocked_reasons=["too many deletes"])


def test_the_preview_has_a_block_per_change_in_plan_order(tmp_path):
    path = tmp_path / "plan.txt"
    write_lines(path, preview_lines(change_set(), header="plan of run r1\ndigest: d"))
    assert path.read_text(encoding="utf-8") == f"""# plan of run r1
# digest: d
# counts: user.create=1
# BLOCKED: too many deletes

# create user a1 (initial password)
dn: CN=Ana,{C}
changetype: add
objectClass: user
cn: Ana

# rename user a2
# objectGUID g2
dn: CN=Bob,{C}
changetype: modrdn
newrdn: CN=Rob
deleteoldrdn: 1
newsuperior: {C}

# modify user a3
# objectGUID g3
dn: CN=Cy,{C}
changetype: modify
replace: title
title: Boss
-
delete: mobile
-

# add_members group g1
# objectGUID g4
dn: CN=Team,{C}
changetype: modify
add: member
member: CN=Ana,{C}
-

# delete user a4 (not in the tenant)
# objectGUID g5
dn: CN=Dee,{C}
changetype: delete
"""


def test_lines_that_fail_half_way_leave_the_earlier_file_whole(tmp_path):
    path = tmp_path / "plan.txt"
    write_lines(path, ["old"])

    def lines():
        yield "new"
        raise RuntimeError("the plan stage stopped")

    with pytest.raises(RuntimeError):
        write_lines(path, lines())
    assert path.read_text(encoding="utf-8") == "old\n"
