"""Reads of the domain fail closed: a paged search whose page fails raises (transient only for busy and
unavailable), an existence check says "missing" only for noSuchObject (32), and the schema and the
password policy are never built from a read that failed. A fake DC on loopback answers through ldap3."""

from __future__ import annotations

import uuid

import pytest

from domain_sync.domain import (
    DomainBusy,
    DomainReadError,
    DomainReadFailed,
    connect,
    endpoint_from_connection,
    entry_exists,
    read_entry,
    search_entries,
)
from domain_sync.domain_schema import read_domain_schema
from domain_sync.errors import PermanentError, TransientError
from domain_sync.passwords.policy import DomainPolicyUnreadable, read_policy
from domain_sync.plan.observed import observe_domain
from tests.fixtures.fake_ldap import SERVER_NAME, Done, Entry, FakeDirectory, self_signed_tls

BASE_DN = "DC=corp,DC=example,DC=test"
CONTAINER = f"OU=Sync,{BASE_DN}"
SCHEMA_DN = f"CN=Schema,CN=Configuration,{BASE_DN}"
PSO_CONTAINER = f"CN=Password Settings Container,CN=System,{BASE_DN}"


class Conn:
    def __init__(self, port: int, ca_file: str):
        self.host, self.port, self.login, self.password = "127.0.0.1", port, f"CN=sync,{BASE_DN}", "secret"
        self.extra_dejson = {"base_dn": BASE_DN, "ca_file": ca_file, "tls_server_name": SERVER_NAME}


@pytest.fixture
def domain(tmp_path):
    """connect(reply) -> a bound ldap3 connection to a fake DC answering each search with reply(base)."""
    cert, key = self_signed_tls(tmp_path)
    started, conns = [], []

    def start(reply, timeout: float = 30.0, **options):
        dc = FakeDirectory("127.0.0.1", search_reply=reply, tls=(cert, key), **options)
        started.append(dc)
        endpoint = endpoint_from_connection(Conn(dc.port, str(cert)), "ldap_domain")
        conn = connect(endpoint, timeout=timeout)
        conn.fake_dc, conn.fake_endpoint = dc, endpoint
        conns.append(conn)
        return conn

    yield start
    from ldap3.core.exceptions import LDAPException

    for conn in conns:
        try:
            conn.unbind()
        except LDAPException:  # a connection a test saw the DC close
            pass
    for dc in started:
        dc.stop()


def pages(*answers):
    """A reply giving the next page of `answers` on each search (every page but the last has a cookie)."""
    remaining = list(answers)

    def reply(base):
        return remaining.pop(0)
    return reply


def user(n: int) -> Entry:
    return Entry(f"CN=u{n},{CONTAINER}", {"cn": [f"u{n}"]})


@pytest.mark.parametrize("code, kind", [(51, DomainBusy), (52, DomainBusy), (3, DomainReadFailed),
                                        (4, DomainReadFailed), (11, DomainReadFailed), (50, DomainReadFailed),
                                        (80, DomainReadFailed)])
def test_a_paged_search_whose_second_page_fails_raises_after_the_first_pages_entries(domain, code, kind):
    conn = domain(pages([user(1), user(2), Done(cookie=b"page-2")], [user(3), Done(code)]))
    seen = []
    with pytest.raises(kind, match=f"reading {CONTAINER} .*LDAP code {code}") as caught:
        for entry in search_entries(conn, CONTAINER, "(cn=*)", ["cn"]):
            seen.append(entry["dn"])
    assert len(seen) >= 2  # entries were read, and still the search raised: no partial read is kept
    assert isinstance(caught.value, DomainReadError)
    assert isinstance(caught.value, TransientError) == (code in (51, 52))
    assert isinstance(caught.value, PermanentError) == (code not in (51, 52))


def test_a_paged_search_that_ends_in_success_reads_every_page(domain):
    conn = domain(pages([user(1), Done(cookie=b"p2")], [user(2), Done(cookie=b"p3")], [user(3), Done()]))
    assert sorted(e["dn"] for e in search_entries(conn, CONTAINER, "(cn=*)", ["cn"])) == [
        f"CN=u{n},{CONTAINER}" for n in (1, 2, 3)]


def test_a_connection_dropped_between_pages_is_a_transient_read_error(domain):
    answers = [[user(1), Done(cookie=b"page-2")]]

    def reply(base):
        if not answers:
            raise ConnectionAbortedError("the fake DC drops the connection")  # its session ends, the socket closes
        return answers.pop(0)
    conn = domain(reply)
    with pytest.raises(DomainBusy, match=f"reading {CONTAINER} .*failed: LDAP"):
        list(search_entries(conn, CONTAINER, "(cn=*)", ["cn"]))


@pytest.mark.parametrize("code", [3, 4])
def test_a_size_or_time_limit_on_a_single_page_search_raises(domain, code):
    conn = domain(lambda base: [user(1), Done(code)])
    with pytest.raises(DomainReadFailed, match=f"LDAP code {code}"):
        list(search_entries(conn, CONTAINER, "(cn=*)", ["cn"]))


def test_an_existence_check_says_missing_only_for_no_such_object(domain):
    conn = domain(lambda base: {CONTAINER: [Entry(CONTAINER, {"objectClass": ["organizationalUnit"]}), Done()],
                                f"OU=Gone,{BASE_DN}": [Done(32)],
                                f"OU=Busy,{BASE_DN}": [Done(51)]}.get(base, [Done(50)]))
    assert entry_exists(conn, CONTAINER) is True
    assert entry_exists(conn, f"OU=Gone,{BASE_DN}") is False
    assert read_entry(conn, f"OU=Gone,{BASE_DN}", ["cn"]) is None
    with pytest.raises(DomainBusy, match=f"OU=Busy,{BASE_DN}.*LDAP code 51"):
        entry_exists(conn, f"OU=Busy,{BASE_DN}")
    with pytest.raises(DomainReadFailed, match=f"OU=Hidden,{BASE_DN}.*LDAP code 50"):
        entry_exists(conn, f"OU=Hidden,{BASE_DN}")


def test_observing_the_domain_stops_when_a_container_check_fails(domain):
    conn = domain(lambda base: [Done(50)] if base == CONTAINER else [Done()])
    with pytest.raises(DomainReadFailed, match=f"reading {CONTAINER} ended with LDAP code 50"):
        observe_domain(conn, BASE_DN, CONTAINER, "mS-DS-ConsistencyGuid", [])


def schema_reply(failing: str = "", code: int = 0):
    def reply(base):
        if base == "":
            return [Entry("", {"schemaNamingContext": [SCHEMA_DN]}), Done()]
        if base == failing:
            return [Entry(f"CN=Group,{SCHEMA_DN}", {"lDAPDisplayName": ["group"]}), Done(code)]
        return [Done()]
    return reply


@pytest.mark.parametrize("code, kind", [(51, DomainBusy), (4, DomainReadFailed), (50, DomainReadFailed)])
def test_the_schema_read_fails_closed(domain, code, kind):
    conn = domain(schema_reply(SCHEMA_DN, code))
    with pytest.raises(kind, match=f"reading {SCHEMA_DN} .*classSchema.*LDAP code {code}"):
        read_domain_schema(conn, [])  # the class rules only (the fake DC reads no nested filters)


def test_the_schema_read_stops_when_the_root_dse_cannot_be_read(domain):
    conn = domain(lambda base: [Done(52)])
    with pytest.raises(DomainBusy, match="root DSE.*LDAP code 52"):
        read_domain_schema(conn, ["displayName"])


def policy_reply(domain_code: int = 0, pso_code: int = 0):
    container_reads = []

    def reply(base):
        if base == "":
            return [Entry("", {"defaultNamingContext": [BASE_DN]}), Done()]
        if base == BASE_DN:
            entry = [Entry(BASE_DN, {"minPwdLength": ["12"], "pwdProperties": ["1"], "pwdHistoryLength": ["5"]})]
            return (entry if domain_code == 0 else []) + [Done(domain_code)]
        if base == PSO_CONTAINER:  # first the container's existence, then the policies in it
            container_reads.append(base)
            if len(container_reads) == 1:
                return [Entry(PSO_CONTAINER, {"cn": ["Password Settings Container"]}), Done()]
            return [Done(pso_code)]
        return [Done(32)]
    return reply


def test_the_policy_is_read_from_the_domain(domain):
    policy = read_policy(domain(policy_reply()))
    assert (policy.min_length, policy.complexity, policy.history_length, policy.source) == (12, True, 5, "domain")


@pytest.mark.parametrize("domain_code, pso_code, kind", [(51, 0, DomainBusy), (50, 0, DomainReadFailed),
                                                         (0, 52, DomainBusy), (0, 3, DomainReadFailed)])
def test_the_policy_read_fails_closed_instead_of_falling_back_to_defaults(domain, domain_code, pso_code, kind):
    with pytest.raises(kind, match=f"LDAP code {domain_code or pso_code}"):
        read_policy(domain(policy_reply(domain_code, pso_code)))


def test_a_policy_without_its_domain_object_is_an_error(domain):
    with pytest.raises(DomainPolicyUnreadable, match=BASE_DN):
        read_policy(domain(policy_reply(domain_code=32)))


class _DroppedConnection:
    """A connection whose read is refused for good and whose DC then drops the socket: unbind raises."""

    result: dict = {}
    response: list = []

    def search(self, *args, **kwargs):
        self.result = {"result": 50, "description": "insufficientAccessRights"}
        return False

    def unbind(self):
        from ldap3.core.exceptions import LDAPSessionTerminatedByServerError

        raise LDAPSessionTerminatedByServerError("session terminated by server")


def test_a_dropped_connection_never_hides_the_error_of_the_read_made_on_it(monkeypatch):
    """Closing a connection the DC dropped raises in ldap3; the stage's own error (here a permanent refusal,
    which the retry rule fails at once) must be what the task reports, not the unbind's."""
    from domain_sync import domain
    from domain_sync.config import Settings
    from domain_sync.mapping import load_mapping
    from domain_sync.transform.stage import target_schema

    monkeypatch.setattr(domain, "connect", lambda *args, **kwargs: _DroppedConnection())
    with pytest.raises(DomainReadFailed, match="insufficientAccessRights"):
        target_schema(Settings(), load_mapping(Settings().mapping_file), endpoint=object())


MARKER = "domain-sync:tenant-1"
ANCHOR_ID = "11111111-1111-1111-1111-111111111111"
OTHER_ID = "22222222-2222-2222-2222-222222222222"


def owned(dn: str, object_id: str, classes=("top", "group")) -> Entry:
    return Entry(dn, {"objectClass": list(classes), "mS-DS-ConsistencyGuid": [uuid.UUID(object_id).bytes_le],
                      "extensionName": [MARKER]})


ELSEWHERE = f"OU=Elsewhere,{BASE_DN}"


def observe_reply(in_container: list[Entry], outside: list[Entry], searched: list[str]):
    """The container holds `in_container`, OU=Elsewhere beside it holds `outside`. The fake DC answers a
    base or one-level search with the base or its children only."""
    container, elsewhere = (Entry(dn, {"objectClass": ["organizationalUnit"]}) for dn in (CONTAINER, ELSEWHERE))

    def reply(base):
        searched.append(base)
        if base == CONTAINER:
            return [container, *in_container, Done()]
        if base == ELSEWHERE:
            return [elsewhere, *outside, Done()]
        if base == BASE_DN:
            return [container, elsewhere, *in_container, *outside, Done()]
        return [Done(32)]
    return reply


def observe(conn, desired):
    return observe_domain(conn, BASE_DN, CONTAINER, "mS-DS-ConsistencyGuid", [], search_base=CONTAINER,
                          owner_attribute="extensionName", owner_marker=MARKER, desired=desired)


def test_the_domain_is_searched_for_owned_objects_outside_the_search_base_only_when_a_create_may_follow(domain):
    inside, moved = owned(f"CN=Sales,{CONTAINER}", ANCHOR_ID), owned(f"CN=Team,{ELSEWHERE}", OTHER_ID)
    searched: list[str] = []
    observed = observe(domain(observe_reply([inside], [moved], searched)), {ANCHOR_ID})
    assert set(observed.objects) == {ANCHOR_ID} and observed.owned_outside == {}
    assert searched.count(BASE_DN) == 1 and ELSEWHERE not in searched  # the account names only
    in_container = searched.count(CONTAINER)
    searched.clear()
    observed = observe(domain(observe_reply([inside], [moved], searched)), {ANCHOR_ID, OTHER_ID})
    assert observed.owned_outside == {OTHER_ID: moved.dn}
    # Beside the account names: the domain's children (listed, then searched one-level for the marker), then
    # the subtree beside the search base; the search base is not searched again.
    assert searched.count(BASE_DN) == 3 and searched.count(ELSEWHERE) == 1
    assert searched.count(CONTAINER) == in_container


def test_the_search_outside_the_search_base_stops_where_the_way_down_to_it_does_not_exist(domain):
    from domain_sync.plan.observed import outside_subtrees

    searched: list[str] = []
    deep = f"OU=Users,OU=Tenant,{BASE_DN}"  # OU=Tenant does not exist yet (a first run creates it)
    user = Entry(f"CN=Local,{BASE_DN}", {"objectClass": ["top", "person", "user"]})
    subtrees = outside_subtrees(domain(observe_reply([], [user], searched)), BASE_DN, deep)
    assert sorted(subtrees) == [(BASE_DN, "LEVEL"), (ELSEWHERE, "SUBTREE"), (CONTAINER, "SUBTREE")]
    assert f"OU=Tenant,{BASE_DN}" not in searched  # never read: nothing is below a container that is not there


def test_an_owned_object_whose_dn_cannot_be_read_holds_its_anchor(domain):
    bad = "CN=broken\\"  # a lone trailing backslash: not a DN
    local = Entry("CN=other\\", {"objectClass": ["top", "group"], "mS-DS-ConsistencyGuid":
                                 [uuid.UUID(OTHER_ID).bytes_le]})  # no marker: not ours
    observed = observe(domain(observe_reply([owned(bad, ANCHOR_ID), local], [], [])), set())
    assert sorted(observed.unreadable) == [bad, local.dn] and observed.unreadable_owned == {ANCHOR_ID: bad}
    assert observed.not_found({ANCHOR_ID, OTHER_ID}) == {OTHER_ID}


def test_reads_made_at_once_each_have_a_connection_and_fail_closed():
    from domain_sync.plan.observed import in_parallel

    class Conn:
        def __init__(self, name):
            self.name, self.closed = name, False

        def unbind(self):
            self.closed = True

    opened: list[Conn] = []

    def connect_more():
        opened.append(Conn(f"extra-{len(opened)}"))
        return opened[-1]

    main = Conn("main")
    assert in_parallel(main, connect_more, [lambda c: c.name, lambda c: c.name]) == ["main", "extra-0"]
    assert opened[0].closed and not main.closed
    assert in_parallel(main, None, [lambda c: c.name, lambda c: c.name]) == ["main", "main"]

    def broken(c):
        raise DomainReadFailed("page 3 failed")

    with pytest.raises(DomainReadFailed, match="page 3"):
        in_parallel(main, connect_more, [lambda c: c.name, broken])
    assert opened[-1].closed


def five_users(base):
    return [*(Entry(f"CN=u{i},{CONTAINER}", {"cn": [f"u{i}"]}) for i in range(5)), Done()]


def test_a_dc_that_sends_whole_answers_is_read_in_one_search(domain):
    conn = domain(five_users, unpaged_limit=None)  # as Samba answers
    assert [e["dn"] for e in search_entries(conn, CONTAINER, "(cn=*)", ["cn"])] == [
        f"CN=u{i},{CONTAINER}" for i in range(5)]
    assert conn.fake_dc.unpaged_searches == conn.fake_dc.searches == [CONTAINER]


def test_a_dc_that_limits_unpaged_answers_is_read_in_pages_and_nothing_comes_twice(domain):
    conn = domain(five_users, unpaged_limit=2)  # as Windows AD answers past its MaxPageSize
    dns = [e["dn"] for e in search_entries(conn, CONTAINER, "(cn=*)", ["cn"])]
    assert dns[:2] == [f"CN=u{i},{CONTAINER}" for i in range(2)]  # the two read first, then the other three
    assert sorted(dns) == [f"CN=u{i},{CONTAINER}" for i in range(5)]
    assert conn.fake_dc.searches == [CONTAINER, CONTAINER] and conn.fake_dc.unpaged_searches == [CONTAINER]
    assert len(list(search_entries(conn, CONTAINER, "(cn=*)", ["cn"]))) == 5
    assert conn.fake_dc.unpaged_searches == [CONTAINER]  # that connection reads in pages from then on


def test_a_new_connection_to_a_dc_that_limits_unpaged_answers_reads_in_pages_from_its_first_search(domain):
    first = domain(five_users, unpaged_limit=2)
    assert len(list(search_entries(first, CONTAINER, "(cn=*)", ["cn"]))) == 5
    dc = first.fake_dc
    second = connect(first.fake_endpoint, timeout=30.0)
    try:
        assert len(list(search_entries(second, CONTAINER, "(cn=*)", ["cn"]))) == 5
    finally:
        second.unbind()
    assert dc.unpaged_searches == [CONTAINER]  # only the first connection's first search asked for a whole answer
    assert second.response is None  # the entries were yielded; no earlier operation's answer is left there


def test_a_search_stopped_early_leaves_the_connection_usable(domain):
    conn = domain(five_users, unpaged_limit=None)
    reading = search_entries(conn, CONTAINER, "(cn=*)", ["cn"])
    assert next(reading)["dn"] == f"CN=u0,{CONTAINER}"
    reading.close()  # the rest of that answer is read and dropped
    assert len(list(search_entries(conn, CONTAINER, "(cn=*)", ["cn"]))) == 5


def ranged_group_reply(members: list[str], later: str = "ranges", search_ends: int = 0):
    """A container holding a user and a big group whose members the DC sends two at a time (as Windows AD sends
    1,500 at a time), its search ending with `search_ends`; a read of the group asking for a range gets the
    next two (the last range empty when `later` is "empty end"), or (`later`) busy, access denied, no range at
    all or another range (the group changed under the reads)."""
    group = f"CN=Big,{CONTAINER}"
    asked = iter(range(2, len(members) + 2, 2))

    def reply(base):
        if base != group:
            return [Entry(f"CN=u0,{CONTAINER}", {"cn": ["u0"]}),
                    Entry(group, {"cn": ["Big"], "member;range=0-1": members[:2]}), Done(search_ends)]
        if later in ("busy", "denied"):
            return [Done({"busy": 51, "denied": 50}[later])]
        if later == "gone":
            return [Entry(group, {"cn": ["Big"]}), Done()]
        if later == "moved":
            return [Entry(group, {"member;range=0-*": members}), Done()]
        low = next(asked)
        last = low + 2 >= len(members) + (later == "empty end")
        return [Entry(group, {f"member;range={low}-{'*' if last else low + 1}": members[low:low + 2]}), Done()]
    return group, reply


@pytest.mark.parametrize("unpaged_limit", [None, 0])  # a whole answer; pages
@pytest.mark.parametrize("count,later", [(5, "ranges"), (4, "empty end")])
def test_a_group_sent_with_value_ranges_is_read_whole(domain, unpaged_limit, count, later):
    members = [f"CN=m{i},{CONTAINER}" for i in range(count)]
    group, reply = ranged_group_reply(members, later)
    conn = domain(reply, unpaged_limit=unpaged_limit)
    entries = {e["dn"]: e for e in search_entries(conn, CONTAINER, "(cn=*)", ["cn", "member"])}
    assert sorted(entries) == sorted([group, f"CN=u0,{CONTAINER}"])
    assert entries[group]["attributes"]["member"] == members
    assert entries[group]["raw_attributes"]["member"] == [m.encode() for m in members]
    assert not [n for n in entries[group]["attributes"] if ";range=" in n]
    assert conn.result["result"] == 0 and conn.auto_range  # the connection's own setting is back


@pytest.mark.parametrize("unpaged_limit", [None, 0])  # a whole answer; pages
@pytest.mark.parametrize("later,error", [("busy", DomainBusy), ("denied", DomainReadFailed), ("gone", DomainBusy),
                                         ("moved", DomainBusy)])
def test_a_range_read_that_fails_fails_the_read(domain, unpaged_limit, later, error):
    _, reply = ranged_group_reply([f"CN=m{i},{CONTAINER}" for i in range(5)], later)
    conn = domain(reply, unpaged_limit=unpaged_limit)
    with pytest.raises(error, match="member of CN=Big"):
        list(search_entries(conn, CONTAINER, "(cn=*)", ["cn", "member"]))


@pytest.mark.parametrize("unpaged_limit", [None, 0])  # a whole answer; pages
def test_a_search_that_fails_after_a_ranged_entry_still_fails(domain, unpaged_limit):
    _, reply = ranged_group_reply([f"CN=m{i},{CONTAINER}" for i in range(5)], search_ends=51)
    conn = domain(reply, unpaged_limit=unpaged_limit)
    with pytest.raises(DomainBusy, match=r"reading OU=Sync.*LDAP code 51"):
        list(search_entries(conn, CONTAINER, "(cn=*)", ["cn", "member"]))


@pytest.mark.parametrize("unpaged_limit", [None, 0])  # a whole answer; pages
@pytest.mark.parametrize("failure", ["goes away", "stalls"])
def test_a_dc_lost_in_the_middle_of_an_answer_is_a_transient_failure(domain, unpaged_limit, failure):
    import time

    def reply(base):  # the DC goes away, or stops answering past the client's timeout, after two entries
        yield Entry(f"CN=u0,{CONTAINER}", {"cn": ["u0"]})
        yield Entry(f"CN=u1,{CONTAINER}", {"cn": ["u1"]})
        if failure == "stalls":
            time.sleep(2.5)
        raise ConnectionAbortedError("the DC went away")

    conn = domain(reply, unpaged_limit=unpaged_limit, timeout=1.0)
    with pytest.raises(DomainBusy):
        list(search_entries(conn, CONTAINER, "(cn=*)", ["cn"]))


def test_an_answer_of_messages_bigger_than_a_read_of_the_socket_is_read_whole(domain):
    members = [f"CN=member {i:06d},{CONTAINER}" for i in range(6000)]  # one message of about 300 KB

    def reply(base):
        return [Entry(f"CN=Everyone,{CONTAINER}", {"cn": ["Everyone"], "member": members}),
                *(Entry(f"CN=u{i},{CONTAINER}", {"cn": [f"u{i}"]}) for i in range(3)), Done()]

    conn = domain(reply, unpaged_limit=None)
    entries = list(search_entries(conn, CONTAINER, "(cn=*)", ["cn", "member"]))
    assert [e["attributes"]["cn"][0] for e in entries] == ["Everyone", "u0", "u1", "u2"]
    assert entries[0]["attributes"]["member"] == members
