"""Initial passwords: the domain's policy read from the domain, random passwords meeting it, delivered to
the sink before the account exists, and never sent over an unencrypted connection."""

from types import SimpleNamespace

import pytest

from domain_sync.apply.writer import ApplyAborted, DomainWriter
from domain_sync.passwords.policy import (
    InsecureConnection,
    PasswordPolicy,
    forbidden_parts,
    generate_password,
    read_policy,
    require_encrypted,
)
from domain_sync.passwords.stores import StoreUnavailable
from domain_sync.records import Change, Op

BASE = "DC=corp,DC=example,DC=test"
PSO_CONTAINER = f"CN=Password Settings Container,CN=System,{BASE}"
DN = f"CN=Ana Lima,OU=Sync,{BASE}"
ANCHOR_ID = "11111111-1111-1111-1111-111111111111"


def entry(dn, **attributes):
    return {"type": "searchResEntry", "dn": dn, "attributes": attributes, "raw_attributes": {}}


class FakeDC:
    """Answers the reads a writer makes and records the writes; `encrypted` says LDAPS or not."""

    domain_sync_pages_only = True  # answers ldap3's paged search only (domain.search_entries reads in pages)

    def __init__(self, encrypted=True, add_code=0, pwd_last_set="0", psos=(), domain=None):
        self.server = SimpleNamespace(ssl=encrypted)
        self.tls_started = False
        self.add_code = add_code
        self.pwd_last_set = pwd_last_set
        self.psos = list(psos)
        self.domain = domain or {"minPwdLength": ["7"], "pwdProperties": ["1"], "pwdHistoryLength": ["24"]}
        self.result, self.response, self.calls = {}, [], []

    def _answer(self, code, entries=()):
        self.result = {"result": code, "description": "success" if code == 0 else f"code {code}", "message": ""}
        self.response = list(entries)
        return code == 0

    def search(self, base, search_filter, search_scope="SUBTREE", attributes=None):
        self.calls.append(("search", base))
        if base == "":
            return self._answer(0, [entry("", defaultNamingContext=[BASE])])
        if base == BASE:
            return self._answer(0, [entry(BASE, **self.domain)])
        if base == PSO_CONTAINER and search_scope == "BASE":
            return self._answer(0, [entry(PSO_CONTAINER)])
        if base == PSO_CONTAINER:
            return self._answer(0, [entry(f"CN=pso{i},{PSO_CONTAINER}", **p) for i, p in enumerate(self.psos)])
        if "pwdLastSet" in (attributes or []):
            return self._answer(0, [entry(DN, pwdLastSet=[self.pwd_last_set])])
        anchor = (attributes or ["x"])[0]
        e = entry(DN)
        e["raw_attributes"] = {anchor: [ANCHOR_ID]}
        return self._answer(0, [e])

    @property
    def extend(self):
        """ldap3's paged search over `search`, one page."""
        def paged_search(base, search_filter, search_scope="SUBTREE", attributes=None, **_):
            self.search(base, search_filter, search_scope, attributes)
            yield from self.response
        return SimpleNamespace(standard=SimpleNamespace(paged_search=paged_search))

    def add(self, dn, classes, attrs):
        self.calls.append(("add", dn, dict(attrs)))
        return self._answer(self.add_code)

    def modify(self, dn, changes):
        self.calls.append(("modify", dn, dict(changes)))
        return self._answer(0)

    def unbind(self):
        pass


class Sink:
    name = "test"

    def __init__(self, fail=None, log=None):
        self.items, self.fail, self.log = [], fail, log

    def deliver_initial(self, item):
        if self.log is not None:
            self.log.append("deliver")
        if self.fail:
            raise self.fail
        self.items.append(item)


def create_change():
    return Change(Op.CREATE, "user", ANCHOR_ID, DN, reason="initial password", values={
        "objectClass": ["top", "person", "organizationalPerson", "user"], "sAMAccountName": ["ana.lima"],
        "displayName": ["Ana Lima"], "userPrincipalName": ["ana.lima@corp.example.test"],
        "userAccountControl": ["512"], "pwdLastSet": ["0"], "text": ["x"]})


def writer(dc, sink=None):
    return DomainWriter(lambda: dc, "text", retry_budget_seconds=1, sink=sink)


def password_sent(dc, op="add"):
    call = next(c for c in dc.calls if c[0] == op)
    value = call[2]["unicodePwd"]
    raw = value[0] if op == "add" else value[0][1][0]
    return raw.decode("utf-16-le").strip('"')


def test_generated_passwords_meet_the_policy_and_avoid_the_names():
    policy = PasswordPolicy(min_length=32, complexity=True)
    for _ in range(200):
        pw = generate_password(policy, "ana.lima", "Ana Lima")
        assert len(pw) == 32 and '"' not in pw and " " not in pw
        assert any(c.isupper() for c in pw) and any(c.islower() for c in pw) and any(c.isdigit() for c in pw)
        assert any(not c.isalnum() for c in pw)
        assert "ana" not in pw.lower() and "lima" not in pw.lower()
    assert len(generate_password(PasswordPolicy(min_length=7))) == 20
    assert forbidden_parts(["ana.lima", "Ana de Lima-Souza"]) == ["ana.lima", "ana", "lima", "souza"]


def test_the_policy_is_the_strictest_of_the_domain_and_its_fine_grained_policies():
    assert read_policy(FakeDC()) == PasswordPolicy(7, True, 24, "domain")
    dc = FakeDC(domain={"minPwdLength": ["5"], "pwdProperties": ["0"], "pwdHistoryLength": ["0"]},
                psos=[{"msDS-MinimumPasswordLength": ["28"], "msDS-PasswordComplexityEnabled": ["TRUE"],
                       "msDS-PasswordHistoryLength": ["10"]}])
    assert read_policy(dc) == PasswordPolicy(28, True, 10, "domain+1 PSOs")


def test_a_password_never_goes_over_an_unencrypted_connection():
    with pytest.raises(InsecureConnection, match="unencrypted"):
        require_encrypted(FakeDC(encrypted=False), "create user x")
    require_encrypted(SimpleNamespace(server=SimpleNamespace(ssl=False), tls_started=True), "StartTLS is fine")
    dc = FakeDC(encrypted=False)
    with pytest.raises(InsecureConnection):
        writer(dc).apply(create_change())
    assert not [c for c in dc.calls if c[0] == "add"]


def test_the_initial_password_goes_to_the_sink_before_the_account_is_created():
    dc, log = FakeDC(), []
    sink = Sink(log=log)
    original = dc.add
    dc.add = lambda *a: (log.append("add"), original(*a))[1]
    result = writer(dc, sink).apply(create_change())
    assert result.status == "applied" and log == ["deliver", "add"]
    (item,) = sink.items
    assert item.password == password_sent(dc) and item.object_id == ANCHOR_ID
    assert item.user_principal_name == "ana.lima@corp.example.test" and item.account_name == "ana.lima"
    assert (item.expires_at - item.created_at).days == 7
    add = next(c for c in dc.calls if c[0] == "add")
    assert add[2]["pwdLastSet"] == ["0"]
    assert item.password not in repr(item) and item.password not in repr(result)


def test_a_sink_that_is_away_stops_the_apply_before_the_account_exists():
    dc = FakeDC()
    with pytest.raises(ApplyAborted, match="did not take the initial password"):
        writer(dc, Sink(fail=StoreUnavailable("vault away"))).apply(create_change())
    assert not [c for c in dc.calls if c[0] == "add"]


def test_a_retried_create_sets_the_delivered_password_while_the_account_waits_for_its_first_logon():
    dc, sink = FakeDC(add_code=68, pwd_last_set="0"), Sink()
    result = writer(dc, sink).apply(create_change())
    assert result.status == "already_in_place" and result.writes == 1
    assert password_sent(dc, "modify") == sink.items[0].password


def test_a_retried_create_leaves_a_password_the_person_already_changed():
    dc = FakeDC(add_code=68, pwd_last_set="134406340535689320")
    result = writer(dc, Sink()).apply(create_change())
    assert result.status == "already_in_place" and "does not apply" in result.message
    assert not [c for c in dc.calls if c[0] == "modify"]
