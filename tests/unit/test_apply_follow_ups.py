"""Writes to objects created in the same plan go by DN: they land only on an object carrying the change's
anchor, and values naming an object whose create failed in this run are left out."""

from __future__ import annotations

import threading
import uuid

from domain_sync.apply.runner import apply_changes
from domain_sync.apply.writer import DomainWriter
from domain_sync.records import ALREADY, APPLIED, FAILED, SKIPPED, ApplyResult, Change, Op

C = "OU=Sync,DC=corp,DC=example,DC=test"
ANCHOR = "mS-DS-ConsistencyGuid"
A1, A2 = "11111111-0000-0000-0000-000000000001", "22222222-0000-0000-0000-000000000002"
GUID = "c796e9a0-7253-412f-a366-41c2b7bee25c"


class Domain:
    """A connection to a domain holding {DN: anchor or None}; records the writes it is asked for."""

    def __init__(self, entries: dict[str, str | None]):
        self.entries = {dn.lower(): anchor for dn, anchor in entries.items()}
        self.writes: list[tuple[str, str]] = []
        self.result, self.response = {}, []

    def search(self, base, search_filter, search_scope="SUBTREE", attributes=None):
        if base.lower() not in self.entries:
            self.result, self.response = {"result": 32, "description": "noSuchObject", "message": ""}, []
            return False
        anchor = self.entries[base.lower()]
        raw = {ANCHOR: [uuid.UUID(anchor).bytes_le]} if anchor else {}
        self.result = {"result": 0, "description": "success"}
        self.response = [{"type": "searchResEntry", "dn": base, "raw_attributes": raw, "attributes": {}}]
        return True

    def _write(self, op, dn, *args, **kwargs):
        self.writes.append((op, dn))
        self.result = {"result": 0, "description": "success"}
        return True

    def modify(self, dn, changes):
        return self._write("modify", dn)

    def delete(self, dn, controls=None):
        return self._write("delete", dn)

    def unbind(self):
        pass


def write(domain: Domain, change: Change) -> ApplyResult:
    return DomainWriter(lambda: domain, ANCHOR, retry_budget_seconds=1).apply(change)


def test_a_write_by_dn_lands_only_on_the_object_carrying_its_anchor():
    dn = f"CN=Team,{C}"
    for holder, there in ((A2, f"carries {A2!r}"), (None, "carries none")):
        domain = Domain({dn: holder})  # another object took the DN after the plan; the group's create failed
        result = write(domain, Change(Op.ADD_MEMBERS, "group", A1, dn, members=[f"CN=Ana,{C}"]))
        assert result.status == FAILED and domain.writes == []
        assert dn in result.message and A1 in result.message and there in result.message
    domain = Domain({})
    result = write(domain, Change(Op.MODIFY, "user", A1, dn, values={"manager": [f"CN=Bob,{C}"]}))
    assert result.status == FAILED and result.result_code == 32 and "no object is there" in result.message
    assert write(Domain({}), Change(Op.DELETE, "user", A1, dn)).status == ALREADY
    domain = Domain({dn: A1})
    assert write(domain, Change(Op.MODIFY, "user", A1, dn, values={"title": ["x"]})).status == APPLIED
    assert domain.writes == [("modify", dn)]
    # Addressed by GUID (an object the plan observed): no read, the write goes to that object.
    domain = Domain({})
    assert write(domain, Change(Op.MODIFY, "user", A1, dn, values={"title": ["x"]}, guid=GUID)).status == APPLIED
    assert domain.writes == [("modify", f"<GUID={GUID}>")]


class CreateFails:
    """A writer whose creates of `failing` anchors fail (68); records every other change it is given."""

    def __init__(self, failing: set[str], applied: list[Change]):
        self.failing, self.applied = failing, applied

    def apply(self, change: Change) -> ApplyResult:
        if change.op == Op.CREATE and change.anchor in self.failing:
            return ApplyResult(change.op, change.kind, change.anchor, change.dn, FAILED, 68, "entryAlreadyExists")
        self.applied.append(change)
        return ApplyResult(change.op, change.kind, change.anchor, change.dn, APPLIED, 0, "", 1)

    def created_guids(self, changes):
        return {}

    def close(self):
        pass


def test_values_naming_an_object_whose_create_failed_are_left_out_with_the_reason():
    bob, ana, team = f"CN=Bob,{C}", f"CN=Ana,{C}", f"CN=Team,{C}"
    changes = [Change(Op.CREATE, "user", A2, bob), Change(Op.CREATE, "user", A1, ana),
               Change(Op.MODIFY, "user", A1, ana, values={"manager": [bob.upper()]}, reason="manager"),
               Change(Op.ADD_MEMBERS, "group", "g1", team, members=[ana, bob, f"<GUID={GUID}>"], guid=GUID)]
    applied: list[Change] = []
    lock = threading.Lock()

    def make():
        with lock:
            return CreateFails({A2}, applied)

    summary = apply_changes(make, changes, connections=2)
    assert [(c.op, c.members) for c in applied if c.op == Op.ADD_MEMBERS] == [(Op.ADD_MEMBERS, [ana, f"<GUID={GUID}>"])]
    assert not [c for c in applied if c.op == Op.MODIFY]  # the manager was all it wrote
    statuses = {(r.op, r.anchor): r.status for r in summary.results}
    assert statuses[(Op.MODIFY, A1)] == SKIPPED and statuses[(Op.ADD_MEMBERS, "g1")] == APPLIED
    notes = {n["op"]: n["message"] for n in summary.to_json()["notes"]}
    assert notes == {Op.MODIFY: f"manager left out, their create failed in this run (the DN may be another "
                                f"object's): {bob.upper()}",
                     Op.ADD_MEMBERS: f"members left out, their create failed in this run (the DN may be another "
                                     f"object's): {bob}"}
