"""Referrals are never followed: a fake DC on loopback answers with referrals to a second listener,
which must never see a connection (ldap3 would bind there with the service account's password)."""

from __future__ import annotations

import pytest

from domain_sync.domain import DomainReferral, check_referrals, connect, endpoint_from_connection, search_entries
from domain_sync.errors import PermanentError
from tests.fixtures.fake_ldap import SERVER_NAME, Done, Entry, FakeDirectory, Reference, self_signed_tls

BASE_DN = "DC=corp,DC=example,DC=test"
BIND_DN = "CN=sync,CN=Users," + BASE_DN
REFERRAL_HOST = "127.0.0.9"


class Conn:
    def __init__(self, port: int, **extra):
        self.host, self.port, self.login, self.password = "127.0.0.1", port, BIND_DN, "service-secret"
        self.extra_dejson = extra


@pytest.fixture
def referral_target():
    """The host a referral names: records whether anyone connected or bound."""
    with FakeDirectory(REFERRAL_HOST) as target:
        yield target


@pytest.fixture
def fake_dc(tmp_path, referral_target):
    """Start a TLS fake DC whose search answer is given by the test, whole or in pages as the client asks (as
    Samba answers); returns (directory, endpoint)."""
    cert, key = self_signed_tls(tmp_path)
    started = []

    def start(search_reply=None):
        dc = FakeDirectory("127.0.0.1", search_reply=search_reply, tls=(cert, key), unpaged_limit=None)
        started.append(dc)
        conn = Conn(dc.port, base_dn=BASE_DN, ca_file=str(cert), tls_server_name=SERVER_NAME)
        return dc, endpoint_from_connection(conn, "ldap_domain")

    yield start
    for dc in started:
        dc.stop()


def referral_url(target: FakeDirectory, dn: str) -> str:
    return f"ldap://{REFERRAL_HOST}:{target.port}/{dn}"


def test_connections_never_follow_referrals(fake_dc):
    _, endpoint = fake_dc()
    conn = connect(endpoint)
    try:
        assert conn.auto_referrals is False
        assert conn.server.allowed_referral_hosts == []
    finally:
        conn.unbind()


def test_a_search_answered_with_a_referral_is_a_configuration_error_and_reaches_no_other_host(
        fake_dc, referral_target):
    dc, endpoint = fake_dc(lambda base: [Done(10, [referral_url(referral_target, base)])])
    conn = connect(endpoint)
    try:
        conn.search(BASE_DN, "(objectClass=*)", attributes=["cn"])
        with pytest.raises(DomainReferral) as caught:
            check_referrals(conn, BASE_DN)
        entries = list(conn.extend.standard.paged_search(BASE_DN, "(objectClass=user)", paged_size=10,
                                                         generator=True))
        with pytest.raises(DomainReferral):
            check_referrals(conn.result, BASE_DN)
    finally:
        conn.unbind()
    message = str(caught.value)
    assert BASE_DN in message and referral_url(referral_target, BASE_DN) in message
    assert "service-secret" not in message
    assert isinstance(caught.value, PermanentError)
    assert entries == []
    assert dc.binds == [BIND_DN] and dc.searches == [BASE_DN, BASE_DN]
    assert (referral_target.connections, referral_target.binds) == (0, [])


def test_a_continuation_reference_in_a_search_response_is_a_configuration_error(fake_dc, referral_target):
    other = "DC=other,DC=example,DC=test"
    reply = [Entry("CN=ana," + BASE_DN, {"cn": ["ana"]}), Reference([referral_url(referral_target, other)]), Done()]
    _, endpoint = fake_dc(lambda base: reply)
    conn = connect(endpoint)
    try:
        assert conn.search(BASE_DN, "(objectClass=*)", attributes=["cn"])
        with pytest.raises(DomainReferral, match=f"{BASE_DN}.*{REFERRAL_HOST}:{referral_target.port}/{other}"):
            check_referrals(conn, BASE_DN)
        with pytest.raises(DomainReferral):
            check_referrals(conn.response, BASE_DN)
        paged = conn.extend.standard.paged_search(BASE_DN, "(objectClass=*)", paged_size=10, generator=True)
        kinds = []
        with pytest.raises(DomainReferral):
            for entry in paged:
                check_referrals(entry, BASE_DN)  # one entry at a time, as a generator yields them
                kinds.append(entry["type"])
    finally:
        conn.unbind()
    assert "searchResRef" not in kinds
    assert (referral_target.connections, referral_target.binds) == (0, [])


@pytest.mark.parametrize("url", [
    "ldaps://corp.example.test/CN=Configuration,DC=corp,DC=example,DC=test",
    "ldap://corp.example.test/CN=Schema,CN=Configuration,DC=corp,DC=example,DC=test",
    "ldap://ForestDnsZones.corp.example.test/DC=ForestDnsZones,DC=corp,DC=example,DC=test",
    "ldap://DomainDnsZones.corp.example.test/DC=DomainDnsZones,DC=corp,DC=example,DC=test??base",
    # the same DNs as a server may spell them: hex escapes, spaces around separators, any case
    "ldap://corp.example.test/CN=Configur%5C61tion,DC=corp,DC=example,DC=test",
    "ldap://corp.example.test/cn = configuration , dc=corp, DC = example,dc=test",
])
def test_continuation_references_to_the_forests_own_partitions_pass(url):
    check_referrals([{"type": "searchResEntry", "dn": BASE_DN}, {"type": "searchResRef", "uri": [url]}], BASE_DN)


@pytest.mark.parametrize("outcome", [
    {"type": "searchResRef", "uri": ["ldap://emea.corp.example.test/DC=emea,DC=corp,DC=example,DC=test"]},
    {"type": "searchResRef", "uri": ["ldap://evil.example/CN=Configuration,OU=x,DC=corp,DC=example,DC=test"]},
    [{"type": "searchResRef", "uri": ["ldap://10.0.0.1/CN=Configuration"]}],
    # not a forest partition, whatever a split at commas and spaces would make of them
    {"type": "searchResRef", "uri": ["ldap://evil.example/DC=Domain DnsZones,DC=corp,DC=example,DC=test"]},
    {"type": "searchResRef", "uri": ["ldap://evil.example/CN=Configuration+OU=x,DC=corp,DC=test"]},
    {"type": "searchResRef", "uri": ["ldap://evil.example/CN=Configuration,DC=corp\\"]},
    {"result": 10, "description": "referral", "referrals": None, "type": "modifyResponse"},
])
def test_other_referrals_raise(outcome):
    with pytest.raises(DomainReferral, match="CN=x"):
        check_referrals(outcome, "CN=x," + BASE_DN)


@pytest.mark.parametrize("outcome", [None, {"result": 0, "type": "searchResDone", "referrals": None}, [],
                                     {"result": 32, "type": "searchResDone"}])
def test_results_without_referrals_pass(outcome):
    check_referrals(outcome, BASE_DN)


@pytest.mark.parametrize("answer", ["reference", "referral"])
def test_a_whole_answer_carrying_a_referral_fails_closed(fake_dc, referral_target, answer):
    other = "DC=other,DC=example,DC=test"
    url = referral_url(referral_target, other)
    reply = ([Entry("CN=ana," + BASE_DN, {"cn": ["ana"]}), Reference([url]), Done()] if answer == "reference"
             else [Done(10, [url])])
    dc, endpoint = fake_dc(lambda base: reply)
    conn = connect(endpoint)
    try:
        with pytest.raises(DomainReferral, match=other):
            list(search_entries(conn, BASE_DN, "(objectClass=*)", ["cn"]))
    finally:
        conn.unbind()
    assert dc.unpaged_searches == [BASE_DN] and (referral_target.connections, referral_target.binds) == (0, [])
