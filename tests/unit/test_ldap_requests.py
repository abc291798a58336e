"""Add and modify requests encoded by hand (domain_sync.ldap_requests) are the bytes ldap3 itself sends for
the same call (`Connection.add`, `Connection.modify` on a connection like apply's), raise what ldap3 raises
for calls it refuses, and leave the connection as ldap3's methods do; a connection they cannot serve the same
way goes to ldap3's own method."""

from __future__ import annotations

import socket
import ssl
import threading

import ldap3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.core.exceptions import LDAPChangeError, LDAPObjectClassError, LDAPSocketSendError

from domain_sync import ldap_requests


class Sent(Exception):
    """Raised in place of the socket write, carrying the bytes ldap3 writes."""

    def __init__(self, message: bytes):
        self.message = message


class CapturingSocket:
    def sendall(self, data: bytes):
        raise Sent(bytes(data))


def offline_connection() -> ldap3.Connection:
    """A synchronous connection set up as apply's (no schema, names unchecked, no referrals), never opened."""
    server = ldap3.Server("127.0.0.1", get_info=ldap3.NONE)
    conn = ldap3.Connection(server, auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False, check_names=False,
                            auto_referrals=False, return_empty_attributes=False)
    conn.strategy._outstanding = {}
    return conn


def ldap3_bytes(call, message_id: int | None = None) -> bytes:
    """What ldap3 writes to its socket for `call(conn)`; `message_id`: the ID its server hands out next."""
    conn = offline_connection()
    conn.listening = True
    conn.socket = CapturingSocket()
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Sent) as sent:
        if message_id is not None:
            patch.setattr(ldap3.Server, "_message_counter", message_id - 1)
        call(conn)
    return sent.value.message


def refused_alike(ldap3_refusal: Exception, ours) -> None:
    """`ours()` raises what ldap3 raised: the same type, and for ldap3's own errors the same message."""
    with pytest.raises(type(ldap3_refusal)) as raised:
        ours()
    if isinstance(ldap3_refusal, LDAPChangeError | LDAPObjectClassError):
        assert str(raised.value) == str(ldap3_refusal)


def message_id_of(message: bytes) -> int:
    """The messageID of an LDAPMessage whose own length is in the short or long form."""
    at = 2 if message[1] < 0x80 else 2 + (message[1] & 0x7F)
    assert message[at] == 0x02
    return int.from_bytes(message[at + 2:at + 2 + message[at + 1]], "big", signed=True)


texts = st.text(st.characters(codec="utf-8"), max_size=30)
names = st.sampled_from(["cn", "CN", "member", "displayName", "unicodePwd", "msDS-cloudExtensionAttribute1",
                         "objectClass", "OBJECTCLASS", "description;binary"]) | st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,20}",
                                                                                            fullmatch=True)
one_value = texts | st.binary(max_size=300) | st.integers(min_value=0, max_value=10**12)
values = one_value | st.lists(one_value, max_size=4) | st.lists(one_value, max_size=3).map(tuple)
classes = st.none() | texts.filter(bool) | st.lists(st.sampled_from(["top", "user", "group", "person", "top"]),
                                                    max_size=4)
operations = st.sampled_from([ldap3.MODIFY_ADD, ldap3.MODIFY_DELETE, ldap3.MODIFY_REPLACE, ldap3.MODIFY_INCREMENT,
                              0, 1, 2, 3])
one_change = st.tuples(operations, st.lists(one_value, max_size=3) | one_value)
changes = st.dictionaries(names, one_change | st.lists(one_change, min_size=1, max_size=3), min_size=1, max_size=5)
message_ids = st.integers(min_value=1, max_value=2**31 - 2)  # ldap3 wraps to 1 at 2**31 - 1


@settings(max_examples=300, deadline=None)
@given(dn=texts, object_class=classes, attributes=st.dictionaries(names, values, max_size=6),
       long_values=st.booleans())
def test_an_add_is_the_bytes_ldap3_sends(dn, object_class, attributes, long_values):
    if long_values:  # lengths in the long form, one and two octets
        attributes = dict(attributes, description=["x" * 200, "y" * 70_000])
    try:
        expected = ldap3_bytes(lambda c: c.add(dn, object_class, attributes))
    except Exception as refused:  # no class at all, a class that is not text: refused alike
        refused_alike(refused, lambda: ldap_requests.encode_add(1, dn, object_class, attributes))
        return
    assert ldap_requests.encode_add(message_id_of(expected), dn, object_class, attributes) == expected


@settings(max_examples=300, deadline=None)
@given(dn=texts, changes=changes)
def test_a_modify_is_the_bytes_ldap3_sends(dn, changes):
    try:
        expected = ldap3_bytes(lambda c: c.modify(dn, changes))
    except Exception as refused:
        refused_alike(refused, lambda: ldap_requests.encode_modify(1, dn, changes))
        return
    assert ldap_requests.encode_modify(message_id_of(expected), dn, changes) == expected


@given(message_id=message_ids)
def test_every_message_id_is_encoded_as_ldap3_encodes_it(message_id):
    change = {"cn": (ldap3.MODIFY_REPLACE, ["y"])}
    expected = ldap3_bytes(lambda c: c.modify("cn=x", change), message_id)
    assert message_id_of(expected) == message_id
    assert ldap_requests.encode_modify(message_id, "cn=x", change) == expected


@pytest.mark.parametrize("bad", [{}, {"cn": ("MODIFY_NOTHING", ["x"])}, {"cn": (ldap3.MODIFY_REPLACE, ["x"], 1)},
                                 {"cn": [(ldap3.MODIFY_REPLACE,)]}])
def test_changes_ldap3_refuses_are_refused_alike(bad):
    with pytest.raises(LDAPChangeError):
        offline_connection().modify("cn=x", bad)
    with pytest.raises(LDAPChangeError):
        ldap_requests.encode_modify(1, "cn=x", bad)


def test_an_add_without_any_class_is_refused_as_ldap3_refuses_it():
    with pytest.raises(LDAPObjectClassError):
        ldap_requests.encode_add(1, "cn=x", None, {"cn": ["x"]})
    with pytest.raises(LDAPObjectClassError):
        offline_connection().add("cn=x", None, {"cn": ["x"]})


def test_a_value_that_is_not_text_number_or_bytes_is_refused():
    with pytest.raises(TypeError, match="not dict"):
        ldap_requests.encode_add(1, "cn=x", "top", {"cn": [{"a": 1}]})


# -- over a socket: the server's answers, the connection's state, the fallback ------------------------------------
def answer(message_id: int, tag: int, code: int, text: bytes = b"") -> bytes:
    """An LDAPResult of `tag` (addResponse 0x69, modifyResponse 0x67) with `code` and a diagnostic message."""
    def tlv(t, content):
        return bytes([t, len(content)]) + content

    result = tlv(0x0A, bytes([code])) + tlv(0x04, b"") + tlv(0x04, text)
    return tlv(0x30, tlv(0x02, message_id.to_bytes(4, "big", signed=True).lstrip(b"\x00") or b"\x00")
               + tlv(tag, result))


class OneShotServer:
    """A loopback LDAP server that reads whole requests and answers each with the next canned answer."""

    def __init__(self, codes: list[int]):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.codes = list(codes)
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        peer, _ = self.sock.accept()
        buffer = b""
        while self.codes:
            chunk = peer.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 2:
                size, at = buffer[1], 2
                if size & 0x80:
                    at = 2 + (size & 0x7F)
                    size = int.from_bytes(buffer[2:at], "big")
                if len(buffer) < at + size:
                    break
                message, buffer = buffer[:at + size], buffer[at + size:]
                self.requests.append(message)
                tag = {0x68: 0x69, 0x66: 0x67}[message[at + 2 + message[at + 1]]]  # after the messageID
                peer.sendall(answer(message_id_of(message), tag, self.codes.pop(0), b"diagnostic"))
        peer.close()


def connected(server: OneShotServer, **options) -> ldap3.Connection:
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=server.port, get_info=ldap3.NONE), raise_exceptions=False,
                            check_names=False, auto_referrals=False, return_empty_attributes=False,
                            collect_usage=True, **options)
    conn.open()
    return conn


def state(conn: ldap3.Connection) -> dict:
    """What a caller can read off the connection after a write."""
    usage = conn.usage
    return {"result": conn.result, "last_error": conn.last_error, "response": conn.response,
            "outstanding": dict(conn.strategy._outstanding), "listening": conn.listening, "bytes_sent": usage.bytes_transmitted,
            "adds": usage.add_operations, "modifies": usage.modify_operations, "messages": usage.messages_received}


ANA = ("CN=Ana,OU=U,DC=x", ["top", "user"], {"sAMAccountName": "ana", "displayName": "Ana Ünal",
                                              "objectSid": b"\x01\x05"})
WRITES = [  # each with the result code the server answers
    ("add", ANA, 0),
    ("add", ANA, 68),  # entryAlreadyExists
    ("modify", ("<GUID=00>", {"member": [(ldap3.MODIFY_ADD, ["CN=Ana,OU=U,DC=x"])]}), 0),
    ("modify", ("<GUID=00>", {"member": [(ldap3.MODIFY_DELETE, ["CN=Bo,OU=U,DC=x"])]}), 16),  # noSuchAttribute
    ("modify", ("CN=Gone,DC=x", {"manager": (ldap3.MODIFY_REPLACE, [])}), 32),  # noSuchObject
    ("add", ANA, 10),  # a referral, not followed
]


def test_the_connection_is_left_as_ldap3s_own_call_leaves_it(monkeypatch):
    def run(add, modify) -> tuple[list, list, list[bytes]]:
        """Each write's return value and the connection's state after it, and the bytes the server read."""
        monkeypatch.setattr(ldap3.Server, "_message_counter", 1000)  # the same message IDs on both runs
        server = OneShotServer([code for _, _, code in WRITES])
        conn = connected(server)
        returned, states = [], []
        for kind, args, _ in WRITES:
            returned.append((add if kind == "add" else modify)(conn, *args))
            states.append(state(conn))
        return returned, states, server.requests

    ours = run(ldap_requests.add_entry, ldap_requests.modify_entry)
    theirs = run(ldap3.Connection.add, ldap3.Connection.modify)
    assert ours[0] == theirs[0] == [True, False, True, False, False, False]
    assert ours[1] == theirs[1]
    assert ours[2] == theirs[2]  # byte for byte
    assert ours[1][-1]["adds"] == 3 and ours[1][-1]["modifies"] == 3


def test_a_refused_request_uses_no_message_id_and_says_why():
    conn = connected(OneShotServer([0]))
    before = ldap3.Server._message_counter
    with pytest.raises(LDAPChangeError):
        ldap_requests.modify_entry(conn, "cn=x", {})
    assert conn.last_error == "no changes in modify request" and ldap3.Server._message_counter == before
    with pytest.raises(LDAPObjectClassError):
        ldap_requests.add_entry(conn, "cn=x", None, {"cn": "x"})
    assert conn.last_error == "objectClass attribute is mandatory" and ldap3.Server._message_counter == before


def _mock(conn):
    return ldap3.Connection(ldap3.Server("x"), client_strategy=ldap3.MOCK_SYNC)


def _names_checked(conn):
    conn.check_names = True  # ldap3 rewrites the DN first
    return conn


def _closed(conn):
    conn.listening = False
    return conn


def _lazy(conn):
    conn.lazy = True  # a deferred bind may be waiting
    return conn


def _referrals_followed(conn):
    conn.auto_referrals = True
    return conn


def _schema(conn):
    conn.server._schema_info = object()
    return conn


def _digest_md5(conn):
    conn.sasl_mechanism = ldap3.DIGEST_MD5
    return conn


def _read_only(conn):
    conn.read_only = True
    return conn


@pytest.mark.parametrize("unlike_apply", [_mock, _names_checked, _closed, _lazy, _referrals_followed, _schema,
                                          _digest_md5, _read_only])
def test_a_connection_ldap3_must_serve_goes_to_ldap3(monkeypatch, unlike_apply):
    calls = []
    monkeypatch.setattr(ldap3.Connection, "add", lambda self, *a: calls.append(("add", a)) or True)
    monkeypatch.setattr(ldap3.Connection, "modify", lambda self, *a: calls.append(("modify", a)) or True)
    like_apply = offline_connection()
    like_apply.listening = True
    assert ldap_requests._served_here(like_apply)
    conn = unlike_apply(like_apply)
    assert ldap_requests.add_entry(conn, "cn=x", "top", {"cn": "x"})
    assert ldap_requests.modify_entry(conn, "cn=x", {"cn": (ldap3.MODIFY_REPLACE, ["y"])})
    assert [c[0] for c in calls] == ["add", "modify"]


def test_a_dropped_socket_raises_ldap3s_communication_error():
    server = OneShotServer([0])
    conn = connected(server)
    conn.socket.close()
    conn.socket = _Refusing()
    with pytest.raises(LDAPSocketSendError):
        ldap_requests.add_entry(conn, "cn=x", "top", {"cn": "x"})
    assert "socket sending error" in conn.last_error


class _Refusing:
    def sendall(self, data):
        raise ssl.SSLEOFError("EOF occurred in violation of protocol")
