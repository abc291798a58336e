"""The credentials stage's rules for password changes: per user in order, each once; stale ones ignored,
replays write nothing, refused ones marked, failures kept pending, unknown users waiting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.credentials.ledger import Ledger
from domain_sync.credentials.stage import SyncedUsers, apply_events, find_users, run
from domain_sync.domain import DomainBusy
from domain_sync.passwords.stores import PasswordChange

A = "11111111-1111-1111-1111-111111111111"
B = "22222222-2222-2222-2222-222222222222"
GUID = {A: "aaaaaaaa-0000-0000-0000-000000000001", B: "bbbbbbbb-0000-0000-0000-000000000002"}
T0 = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
BASE = "DC=corp,DC=example,DC=test"


def event(oid, minutes, eid, password=None):
    return PasswordChange(oid, password or f"Pw-{eid}-x9!", T0 + timedelta(minutes=minutes), eid, f"origin/{eid}")


class Source:
    name = "fake"

    def __init__(self):
        self.marks = []

    def mark(self, event, outcome):
        self.marks.append((event.event_id, outcome))


class Domain:
    """Answers each password modify with the next code of `codes` (per user); records what was set."""

    def __init__(self, codes=None):
        self.server = SimpleNamespace(ssl=True)
        self.tls_started = False
        self.codes = {k: list(v) for k, v in (codes or {}).items()}
        self.set, self.result = [], {}

    def modify(self, dn, changes):
        oid = next(o for o, g in GUID.items() if g in dn)
        code = (self.codes.get(oid) or [0]).pop(0)
        self.result = {"result": code, "description": f"code {code}"}
        if code == 0:
            self.set.append((oid, changes["unicodePwd"][0][1][0].decode("utf-16-le").strip('"')))
        return code == 0


def ctx(tmp_path, **settings):
    return StageContext.offline(Settings(data_dir=str(tmp_path), **settings), "run-1")


def test_a_users_events_are_applied_in_their_time_order_each_once(tmp_path):
    domain, source, ledger = Domain(), Source(), Ledger.in_state(tmp_path)
    events = [event(A, 2, "a2"), event(A, 1, "a1"), event(B, 1, "b1")]
    outcomes, retry = apply_events(ctx(tmp_path), source, ledger, domain, SyncedUsers(GUID), events)
    assert [o["event_id"] for o in outcomes] == ["a1", "a2", "b1"] and not retry
    assert domain.set == [(A, "Pw-a1-x9!"), (A, "Pw-a2-x9!"), (B, "Pw-b1-x9!")]
    assert source.marks == [("a1", "applied"), ("a2", "applied"), ("b1", "applied")]
    assert Ledger.in_state(tmp_path).last_applied_at(A) == T0 + timedelta(minutes=2)  # on disk
    assert all("Pw-" not in str(o) for o in outcomes)


def test_a_replay_changes_nothing_and_an_older_event_is_stale(tmp_path):
    ledger = Ledger.in_state(tmp_path)
    apply_events(ctx(tmp_path), Source(), ledger, Domain(), SyncedUsers(GUID), [event(A, 5, "a5")])
    domain, source = Domain(), Source()
    outcomes, _ = apply_events(ctx(tmp_path), source, Ledger.in_state(tmp_path), domain, SyncedUsers(GUID),
                               [event(A, 5, "a5"), event(A, 3, "a3"), event(A, 5, "a5-same-time")])
    assert [(o["event_id"], o["outcome"]) for o in outcomes] == [("a3", "stale"), ("a5", "replayed"),
                                                                  ("a5-same-time", "stale")]
    assert domain.set == [] and source.marks == [("a3", "stale"), ("a5", "replayed"), ("a5-same-time", "stale")]
    assert "older than the last applied change" in outcomes[0]["reason"]


def test_a_refused_password_is_marked_and_the_users_later_events_go_on(tmp_path):
    domain, source = Domain({A: [19, 0]}), Source()
    outcomes, retry = apply_events(ctx(tmp_path), source, Ledger.in_state(tmp_path), domain, SyncedUsers(GUID),
                                   [event(A, 1, "short"), event(A, 2, "good")])
    assert [o["outcome"] for o in outcomes] == ["refused", "applied"] and not retry
    assert source.marks == [("short", "refused"), ("good", "applied")]


def test_a_failure_keeps_the_event_and_the_users_later_ones_pending(tmp_path):
    domain, source = Domain({A: [51]}), Source()
    outcomes, retry = apply_events(ctx(tmp_path), source, Ledger.in_state(tmp_path), domain, SyncedUsers(GUID),
                                   [event(A, 1, "busy"), event(A, 2, "later"), event(B, 1, "other")])
    assert [(o["event_id"], o["outcome"]) for o in outcomes] == [("busy", "failed"), ("later", "failed"),
                                                                  ("other", "applied")]
    assert retry and source.marks == [("other", "applied")] and domain.set == [(B, "Pw-other-x9!")]
    # the next try takes them again, in order
    domain, source = Domain(), Source()
    outcomes, retry = apply_events(ctx(tmp_path), source, Ledger.in_state(tmp_path), domain, SyncedUsers(GUID),
                                   [event(A, 1, "busy"), event(A, 2, "later")])
    assert [o["outcome"] for o in outcomes] == ["applied", "applied"] and not retry


def test_an_event_for_a_user_the_domain_does_not_hold_waits(tmp_path):
    source = Source()
    outcomes, _ = apply_events(ctx(tmp_path), source, Ledger.in_state(tmp_path), Domain(), SyncedUsers(),
                               [event(A, 1, "early"), event(A, 2, "early-2")])
    assert [o["outcome"] for o in outcomes] == ["waiting", "waiting"] and source.marks == []


class Directory:
    """Answers find_users' paged search with `entries`, in the order given."""

    domain_sync_pages_only = True  # answers ldap3's paged search only (domain.search_entries reads in pages)

    def __init__(self, entries):
        self.entries, self.result, self.searches = entries, {}, []
        self.extend = SimpleNamespace(standard=SimpleNamespace(paged_search=self.paged_search))

    def paged_search(self, base, search_filter, **_):
        self.searches.append((base, search_filter))
        self.result = {"result": 0, "description": "success", "type": "searchResDone"}
        yield from self.entries


def synced(dn, oid, guid, classes=("top", "person", "organizationalPerson", "user"), marker="domain-sync:t1"):
    return {"type": "searchResEntry", "dn": dn,
            "attributes": {"objectClass": list(classes), "extensionName": [marker] if marker else []},
            "raw_attributes": {"mS-DS-ConsistencyGuid": [uuid.UUID(oid).bytes_le],
                               "objectGUID": [uuid.UUID(guid).bytes_le]}}


OTHER_GUID = "cccccccc-0000-0000-0000-000000000003"
FIRST = f"CN=Ana,OU=AADDC Users,{BASE}"
SECOND = f"CN=Ana (copy),OU=Old,{BASE}"


@pytest.mark.parametrize("order", [1, -1])
def test_an_anchor_on_two_synced_objects_gets_no_password_whatever_order_the_domain_answers_in(tmp_path, order):
    entries = [synced(FIRST, A, GUID[A]), synced(SECOND, A, OTHER_GUID), synced(f"CN=Bo,{BASE}", B, GUID[B])]
    users = find_users(Directory(entries[:2][::order] + entries[2:]), Settings(), BASE, "domain-sync:t1", [A, B])
    assert users.guids == {B: GUID[B]}
    assert users.duplicates == {A: sorted([FIRST, SECOND])}
    domain, source = Domain(), Source()
    outcomes, retry = apply_events(ctx(tmp_path), source, Ledger.in_state(tmp_path), domain, users,
                                   [event(A, 1, "a1"), event(B, 1, "b1")])
    held = next(o for o in outcomes if o["object_id"] == A)
    assert held["outcome"] == "duplicate_anchor" and A in held["reason"]
    assert FIRST in held["reason"] and SECOND in held["reason"]
    assert domain.set == [(B, "Pw-b1-x9!")] and source.marks == [("b1", "applied")] and not retry


def test_only_synced_users_of_this_sync_count_as_holders(tmp_path):
    entries = [synced(FIRST, A, GUID[A]), synced(SECOND, A, OTHER_GUID, marker="domain-sync:another-tenant"),
               synced(f"CN=pc,{BASE}", A, OTHER_GUID, classes=("top", "user", "computer")),
               synced(f"CN=Crew,{BASE}", B, GUID[B], classes=("top", "group"))]
    users = find_users(Directory(entries), Settings(), BASE, "domain-sync:t1", [A, B])
    assert users.guids == {A: GUID[A]} and users.duplicates == {}  # a group is no user: B waits


def test_a_failed_user_lookup_stops_the_stage_before_any_password_is_set():
    directory = Directory([synced(FIRST, A, GUID[A])])

    def failing(base, search_filter, **_):
        yield from directory.entries
        directory.result = {"result": 51, "description": "busy", "type": "searchResDone"}
    directory.extend.standard.paged_search = failing
    with pytest.raises(DomainBusy, match="LDAP code 51"):
        find_users(directory, Settings(), BASE, "domain-sync:t1", [A])


def test_without_a_source_the_stage_reports_zero_counts(tmp_path):
    summary = run(ctx(tmp_path))
    counts = summary["password_changes"]
    assert summary["source"] == "none" and counts["set"] == counts["skipped_stale"] == counts["failed"] == 0
    assert "failed" not in summary  # the stage did not fail


def test_a_password_change_never_goes_over_an_unencrypted_connection(tmp_path):
    import pytest

    from domain_sync.passwords.policy import InsecureConnection

    domain = Domain()
    domain.server.ssl = False
    with pytest.raises(InsecureConnection):
        apply_events(ctx(tmp_path), Source(), Ledger.in_state(tmp_path), domain, SyncedUsers(GUID),
                     [event(A, 1, "a1")])
    assert domain.set == []


def test_with_the_state_lock_held_by_another_run_nothing_is_read_or_written(tmp_path, monkeypatch):
    import json

    import pytest
    from cryptography.fernet import Fernet

    from domain_sync.errors import StageInputMissing
    from domain_sync.passwords.dropfolder import DropFolderStore
    from domain_sync.runs import write_json_atomic
    from domain_sync.state import StateChanged, StateStore

    key = Fernet.generate_key().decode()
    drop = DropFolderStore(tmp_path / "drop", [key])
    drop.drop_change(A, "Pw-1-x9!", T0, "e-1")
    monkeypatch.setenv("AIRFLOW_CONN_DROP", json.dumps({"conn_type": "fs", "password": key,
                                                        "extra": {"path": str(tmp_path / "drop")}}))
    context = ctx(tmp_path, credential_source="dropfolder", credential_source_conn_id="drop")
    with pytest.raises(StageInputMissing):  # no extract in this run
        run(context)
    write_json_atomic(context.run.state_read, {"version": None})
    StateStore(context.settings.state_dir).acquire_lock("another-run")
    with pytest.raises(StateChanged, match="another-run"):
        run(context)
    assert len(drop.pending()[0]) == 1  # still pending
