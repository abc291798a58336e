"""Add and modify requests written straight to BER, for apply's writes.

ldap3 (2.9.1) builds each request as pyasn1 objects (several per value), turns them back into a dict for its
own bookkeeping, then encodes them with pyasn1: 1.5 to 2 ms of client CPU for a user's add, four to five
times what the add costs encoded here. Where the sync runs beside its DC (this project's local domain, a
small host), that CPU is taken from the DC, and a first sync is tens of thousands of adds.

`add_entry` and `modify_entry` take what `Connection.add` and `Connection.modify` take and leave what the
writer reads as ldap3's methods leave it (`conn.result`, `conn.last_error`, the answer collected, the usage
counters); the bytes they send are the ones ldap3 sends (a property test compares them with what ldap3
writes to its socket). The outstanding request keeps the DN and the operation, not a copy of the values (no
initial password is held there). They use ldap3's connection, message ids, answer reading and errors:
only the encoding is done here. A connection this cannot serve the same way (another strategy than a plain
synchronous one, a lazy one, a schema to check values against, names checked, referrals followed, SASL
signing, a socket not open, a read-only connection) goes to ldap3's own method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_SEQUENCE, _SET, _OCTET_STRING, _INTEGER, _ENUMERATED = 0x30, 0x31, 0x04, 0x02, 0x0A
_ADD_REQUEST, _MODIFY_REQUEST = 0x68, 0x66  # [APPLICATION 8], [APPLICATION 6], constructed (RFC 4511)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _integer(n: int) -> bytes:
    """A non-negative INTEGER's or ENUMERATED's content octets: two's complement, shortest form."""
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def _octets(value: Any) -> bytes:
    """A value as ldap3 sends it without a schema: numbers as their text, text as UTF-8, bytes as they are."""
    from ldap3.utils.conv import to_raw

    raw = to_raw(value)
    if not isinstance(raw, bytes | bytearray):
        raise TypeError(f"an LDAP value must be text, a number or bytes, not {type(value).__name__}")
    return bytes(raw)


def _values(value: Any) -> list:
    from ldap3 import SEQUENCE_TYPES

    return list(value) if isinstance(value, SEQUENCE_TYPES) else [value]


def _attribute(name: str, values: Iterable[Any]) -> bytes:
    """PartialAttribute ::= SEQUENCE { type AttributeDescription, vals SET OF value }"""
    return _tlv(_SEQUENCE, _tlv(_OCTET_STRING, _octets(name))
                + _tlv(_SET, b"".join(_tlv(_OCTET_STRING, _octets(v)) for v in values)))


def _message(message_id: int, protocol_op: bytes) -> bytes:
    return _tlv(_SEQUENCE, _tlv(_INTEGER, _integer(message_id)) + protocol_op)


def add_attributes(object_class: Any, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The attributes `Connection.add` sends: objectClass holds the classes given, then those among the
    attributes (text), each once, in the attributes' objectClass place or last."""
    from ldap3.core.exceptions import LDAPObjectClassError
    from ldap3.utils.conv import to_unicode

    attributes = dict(attributes or {})
    name = next((a for a in attributes if a.lower() == "objectclass"), "objectClass")
    given = [] if object_class is None else _values(object_class)
    classes: list = []
    for c in given + [to_unicode(c) for c in _values(attributes.get(name, []))]:
        if c not in classes:
            classes.append(c)
    if not classes:
        raise LDAPObjectClassError("objectClass attribute is mandatory")
    attributes[name] = classes
    return attributes


def add_request(dn: str, object_class: Any, attributes: Mapping[str, Any] | None) -> bytes:
    """AddRequest ::= [APPLICATION 8] SEQUENCE { entry LDAPDN, attributes SEQUENCE OF Attribute }"""
    body = b"".join(_attribute(k, _values(v)) for k, v in add_attributes(object_class, attributes).items())
    return _tlv(_ADD_REQUEST, _tlv(_OCTET_STRING, _octets(dn)) + _tlv(_SEQUENCE, body))


def encode_add(message_id: int, dn: str, object_class: Any, attributes: Mapping[str, Any] | None) -> bytes:
    """The add request in its LDAPMessage."""
    return _message(message_id, add_request(dn, object_class, attributes))


def modify_changes(changes: Mapping[str, Any]) -> list[tuple[int, str, list]]:
    """(operation, attribute, values) of each change, in order, as `Connection.modify` reads `changes`:
    {attribute: (operation, values)} or {attribute: [(operation, values), ...]}."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_INCREMENT, MODIFY_REPLACE, SEQUENCE_TYPES
    from ldap3.core.exceptions import LDAPChangeError
    from ldap3.operation.modify import change_table

    operations = (MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, MODIFY_INCREMENT, 0, 1, 2, 3)
    if not isinstance(changes, dict):
        raise LDAPChangeError("changes must be a dictionary")
    if not changes:
        raise LDAPChangeError("no changes in modify request")
    out = []
    for name, change in changes.items():
        if isinstance(change, SEQUENCE_TYPES) and change[0] in operations:
            if len(change) != 2:
                raise LDAPChangeError("malformed change")
            change = [change]
        for each in change:
            if len(each) != 2 or each[0] not in operations:
                raise LDAPChangeError("invalid change list")
            out.append((change_table[each[0]], name, _values(each[1])))
    return out


def modify_request(dn: str, changes: Mapping[str, Any]) -> bytes:
    """ModifyRequest ::= [APPLICATION 6] SEQUENCE { object LDAPDN, changes SEQUENCE OF SEQUENCE {
    operation ENUMERATED, modification PartialAttribute } }"""
    body = b"".join(_tlv(_SEQUENCE, _tlv(_ENUMERATED, _integer(operation)) + _attribute(name, values))
                    for operation, name, values in modify_changes(changes))
    return _tlv(_MODIFY_REQUEST, _tlv(_OCTET_STRING, _octets(dn)) + _tlv(_SEQUENCE, body))


def encode_modify(message_id: int, dn: str, changes: Mapping[str, Any]) -> bytes:
    """The modify request in its LDAPMessage."""
    return _message(message_id, modify_request(dn, changes))


def _served_here(conn) -> bool:
    """The connection takes hand-encoded requests with the same outcome as ldap3's own methods."""
    from ldap3 import DIGEST_MD5
    from ldap3.strategy.sync import SyncStrategy

    return (type(getattr(conn, "strategy", None)) is SyncStrategy and conn.listening and not conn.lazy
            and not conn.check_names and not conn.auto_referrals and conn.server.schema is None
            and conn.sasl_mechanism != DIGEST_MD5 and not conn.sasl_in_progress and not conn.read_only)


def _send(conn, request_type: str, response_type: str, dn: str, build) -> bool:
    """Send the request `build()` encodes (its protocolOp) and read its answer, as `BaseStrategy.send` and
    `SyncStrategy.post_send_single_response` do; True when it succeeded. A request ldap3 refuses before
    sending is refused alike, with no message id used."""
    from ldap3.core.exceptions import (
        LDAPChangeError,
        LDAPObjectClassError,
        LDAPSocketSendError,
        communication_exception_factory,
    )

    conn.last_error = None
    with conn.connection_lock:
        try:
            request = build()
        except (LDAPChangeError, LDAPObjectClassError) as exc:
            conn.last_error = str(exc)
            raise
        message_id = conn.server.next_message_id()
        message = _message(message_id, request)
        conn.request = {"entry": dn, "type": request_type, "controls": None}
        conn.strategy._outstanding[message_id] = conn.request
        try:
            conn.socket.sendall(message)
        except OSError as exc:
            conn.last_error = f"socket sending error{exc}"
            raise communication_exception_factory(LDAPSocketSendError, type(exc)(str(exc)))(conn.last_error) from None
        if conn.usage:
            conn._usage.update_transmitted_message(conn.request, len(message))
        conn.strategy.post_send_single_response(message_id)
        conn._entries = []
        result = conn.result or {}
        done = result.get("type") == response_type and result.get("result") == 0
        if not done and result.get("result") != 0 and not conn.last_error:
            conn.last_error = result.get("description")
        return done


def add_entry(conn, dn: str, object_class: Any, attributes: Mapping[str, Any] | None) -> bool:
    """`conn.add(dn, object_class, attributes)`, encoded here where the connection allows it."""
    if not _served_here(conn):
        return conn.add(dn, object_class, attributes)
    return _send(conn, "addRequest", "addResponse", dn,
                 lambda: add_request(dn, object_class, attributes))


def modify_entry(conn, dn: str, changes: Mapping[str, Any]) -> bool:
    """`conn.modify(dn, changes)`, encoded here where the connection allows it."""
    if not _served_here(conn):
        return conn.modify(dn, changes)
    return _send(conn, "modifyRequest", "modifyResponse", dn,
                 lambda: modify_request(dn, changes))
