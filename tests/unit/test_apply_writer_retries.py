"""What the LDAP writer retries: the connection failing, busy/unavailable answers; never a request the
client library refuses, and not code 80 unless the settings say so. What its reads conclude: an object
is gone only when the domain says noSuchObject."""

import pytest
from ldap3.core.exceptions import LDAPInvalidDnError, LDAPSocketOpenError

from domain_sync.apply.writer import DomainWriter
from domain_sync.records import Change, Op


class FakeConnection:
    def __init__(self, answers):
        self.answers = answers
        self.result = {}
        self.response = []
        self.calls = 0

    def modify(self, dn, changes):
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        self.result = {"result": answer, "description": f"code {answer}", "message": ""}
        return answer == 0

    def search(self, base, search_filter, search_scope="SUBTREE", attributes=None):
        return self.modify(base, {})

    def unbind(self):
        pass


def writer_for(conn, **kwargs):
    return DomainWriter(lambda: conn, "mS-DS-ConsistencyGuid", retry_budget_seconds=5, **kwargs)


CHANGE = Change(Op.MODIFY, "user", "a1", "CN=A,DC=x", values={"title": ["t"]}, guid="c796e9a0-7253-412f-a366-41c2b7bee25c")


def test_a_request_the_client_refuses_fails_that_change_at_once():
    conn = FakeConnection([LDAPInvalidDnError("bad dn")])
    result = writer_for(conn).apply(CHANGE)
    assert result.status == "failed" and conn.calls == 1 and "LDAPInvalidDnError" in result.message


def test_code_80_is_a_failure_of_the_change_by_default_and_retried_when_configured(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    conn = FakeConnection([80])
    assert writer_for(conn).apply(CHANGE).status == "failed" and conn.calls == 1
    conn = FakeConnection([80, 0])
    assert writer_for(conn, transient_codes=frozenset({51, 52, 80})).apply(CHANGE).status == "applied"
    assert conn.calls == 2


def test_a_dropped_connection_is_retried_and_the_write_lands_on_the_guid(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    conn = FakeConnection([LDAPSocketOpenError("refused"), 0])
    seen = []
    original = conn.modify
    conn.modify = lambda dn, changes: (seen.append(dn), original(dn, changes))[1]
    assert writer_for(conn).apply(CHANGE).status == "applied"
    assert seen == ["<GUID=c796e9a0-7253-412f-a366-41c2b7bee25c>"] * 2


@pytest.mark.parametrize("code, message", [(32, "no longer exists"), (50, "could not be read: LDAP code 50")])
def test_a_rename_says_the_object_is_gone_only_when_the_domain_says_no_such_object(code, message):
    conn = FakeConnection([code])
    rename = Change(Op.RENAME, "user", "a1", "CN=A,DC=x", new_dn="CN=B,DC=x", guid=CHANGE.guid)
    result = writer_for(conn).apply(rename)
    assert result.status == "failed" and result.result_code == code and message in result.message
    assert conn.calls == 1  # the read only: nothing renamed
