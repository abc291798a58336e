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
from ldap3.strategy.base import BaseStrategy

from domain_sync import ldap_requests


class Sent(Exception):
    """Raised in place of ldap3's socket write, carrying the bytes it would have sent."""

    def __init__(self, message: bytes):
        self.message = message


def offline_connection() -> ldap3.Connection:
    """A synchronous connection set up as apply's (no schema, names unchecked, no referrals), never opened."""
    server = ldap3.Server("127.0.0.1", get_info=ldap3.NONE)
    conn = ldap3.Connection(server, auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False, check_names=False,
                            auto_referrals=False, return_empty_attributes=False)
    conn.strategy._outstanding = {}
    return conn


def ldap3_bytes(call, message_id: int | None = None) -> bytes:
    """What ldap3 sends for `call(conn)` (its own encoding); `message_id`: the ID its server hands out next."""
    from pyasn1.codec.ber import encoder

    def sending(self, ldap_message):
        raise Sent(encoder.encode(ldap_message))

    conn = offline_connection()
    conn.listening = True
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Sent) as sent:
        patch.setattr(BaseStrategy, "sending", sending)
        if message_id is not None:
            patch.setattr(ldap3.Server, "_message_counter", message_id - 1)
        call(conn)
    return sent.value.message


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
message_ids = st.integers(min_value=1, max_value=2**31 - 1)


@settings(max_examples=300, deadline=None)
@given(dn=texts, object_class=classes, attributes=st.dictionaries(names, values, max_size=6),
       long_values=st.booleans())
def test_an_add_is_the_bytes_ldap3_sends(dn, object_class, attributes, long_values):
    if long_values:  # lengths in the long form, one and two octets
        attributes = dict(attributes, description=["x" * 200, "y" * 70_000])
    try:
        expected = ldap3_bytes(lambda c: c.add(dn, object_class, attributes))
    except Exception as refused:  # no class at all, a class that is not text: refused alike
        with pytest.raises(type(refused)):
            ldap_requests.encode_add(1, dn, object_class, attributes)
        return
    assert ldap_requests.encode_add(message_id_of(expected), dn, object_class, attributes) == expected


@settings(max_examples=300, deadline=None)
@given(dn=texts, changes=changes)
def test_a_modify_is_the_bytes_ldap3_sends(dn, changes):
    try:
        expected = ldap3_bytes(lambda c: c.modify(dn, changes))
    except Exception as refused:
        with pytest.raises(type(refused)):
            ldap_requests.encode_modify(1, dn, changes)
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


def test_the_connection_holds_the_answer_as_after_ldap3s_own_call():
    server = OneShotServer([0, 68, 0])
    conn = connected(server)
    attributes = {"sAMAccountName": "ana", "displayName": "Ana Ünal"}
    assert ldap_requests.add_entry(conn, "CN=Ana,OU=U,DC=x", ["top", "user"], attributes) is True
    assert conn.result["result"] == 0 and conn.result["type"] == "addResponse" and conn.last_error is None
    assert ldap_requests.add_entry(conn, "CN=Ana,OU=U,DC=x", ["top", "user"], attributes) is False
    assert conn.result["result"] == 68 and conn.result["message"] == "diagnostic"
    assert conn.last_error == "entryAlreadyExists"
    assert ldap_requests.modify_entry(conn, "<GUID=00>", {"member": [(ldap3.MODIFY_ADD, ["CN=Ana,OU=U,DC=x"])]})
    assert conn.usage.add_operations == 2 and conn.usage.modify_operations == 1
    assert conn.strategy._outstanding == {}  # every answer collected
    assert server.requests[1] == ldap_requests.encode_add(message_id_of(server.requests[1]), "CN=Ana,OU=U,DC=x",
                                                          ["top", "user"], attributes)
    assert message_id_of(server.requests[2]) == message_id_of(server.requests[0]) + 2


def test_a_connection_ldap3_must_serve_goes_to_ldap3(monkeypatch):
    calls = []
    monkeypatch.setattr(ldap3.Connection, "add", lambda self, *a: calls.append(("add", a)) or True)
    monkeypatch.setattr(ldap3.Connection, "modify", lambda self, *a: calls.append(("modify", a)) or True)
    mock = ldap3.Connection(ldap3.Server("x"), client_strategy=ldap3.MOCK_SYNC)
    checked = ldap3.Connection(ldap3.Server("x"), check_names=True)  # ldap3 rewrites the DN first
    for conn in (mock, checked):
        assert ldap_requests.add_entry(conn, "cn=x", "top", {"cn": "x"})
        assert ldap_requests.modify_entry(conn, "cn=x", {"cn": (ldap3.MODIFY_REPLACE, ["y"])})
    assert [c[0] for c in calls] == ["add", "modify", "add", "modify"]


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
