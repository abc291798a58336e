"""Search answers decoded in one pass.

ldap3 (2.9.1) decodes each LDAP message into nested tuples, one per BER element (slicing ten bytes to read
every length), then walks the tuples twice to build an entry's raw and text attributes, each name going
through a case-insensitive dict's `__setitem__` and every value through `to_unicode`, which looks up four
configuration parameters per call. A full read of a large domain is millions of elements: most of the
client's time in the plan's read.

`install()` gives ldap3's synchronous strategy a decoder that reads a search result entry
(SearchResultEntry, RFC 4511 4.5.2) straight into the entry dict ldap3 builds from it: the same keys (dn,
raw_dn, attributes, raw_attributes), the same text, the same fallbacks for values the server encoding
cannot decode, the same case-insensitive attribute dicts. Every other message, and any entry this decoder
does not expect in every byte (controls on the entry, a multi-byte tag, a length past the message), goes to
ldap3's own decoder, so what cannot be read fast is read as before.
"""

from __future__ import annotations

from typing import Any

_SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4], constructed
_SEQUENCE, _SET, _OCTET_STRING, _INTEGER = 0x30, 0x31, 0x04, 0x02
_NAMES_KEPT = 10_000


class _Unexpected(Exception):
    """Bytes this decoder does not read: ldap3's own decoder does."""


class DecodedEntry(dict):
    """A searchResEntry payload already decoded into ldap3's entry dict; `message` is the message it came in
    (for a connection that checks names, which ldap3's own decoding serves)."""

    __slots__ = ("message",)


def _length(message: bytes, at: int) -> tuple[int, int]:
    """(length, offset of the value) of the element whose length octets start at `at`."""
    first = message[at]
    if first < 0x80:
        return first, at + 1
    octets = first & 0x7F
    if not 0 < octets <= 4:
        raise _Unexpected
    return int.from_bytes(message[at + 1:at + 1 + octets], "big"), at + 1 + octets


def _element(message: bytes, at: int, tag: int) -> tuple[int, int]:
    """(length, offset of the value) of the element at `at`, which must have that tag."""
    if message[at] != tag:
        raise _Unexpected
    return _length(message, at + 1)


def decode_entry(message: bytes, server_encoding: str, to_text, names: dict[bytes, str],
                 case_insensitive: bool) -> tuple[int, DecodedEntry]:
    """(messageID, entry dict) of an LDAPMessage holding a SearchResultEntry without controls; _Unexpected
    for anything else. `to_text(bytes)`: ldap3's conversion of server data (the server encoding, then its
    fallbacks). `names`: attribute names decoded so far (a domain sends the same few thousand at most)."""
    from ldap3.utils.ciDict import CaseInsensitiveDict

    end_of_message = len(message)
    size, at = _element(message, 0, _SEQUENCE)
    if at + size != end_of_message:
        raise _Unexpected
    size, at = _element(message, at, _INTEGER)
    message_id = int.from_bytes(message[at:at + size], "big", signed=True)
    size, at = _element(message, at + size, _SEARCH_RESULT_ENTRY)
    if at + size != end_of_message:  # controls follow the entry: ldap3's decoder reads them
        raise _Unexpected
    size, at = _element(message, at, _OCTET_STRING)
    raw_dn = message[at:at + size]
    size, at = _element(message, at + size, _SEQUENCE)
    if at + size != end_of_message:
        raise _Unexpected
    raw_pairs: list[tuple[str, Any]] = []  # in the answer's order: a name sent twice keeps its last values
    text_pairs: list[tuple[str, Any]] = []
    while at < end_of_message:
        size, at = _element(message, at, _SEQUENCE)
        end_of_attribute = at + size
        size, at = _element(message, at, _OCTET_STRING)
        name_bytes = message[at:at + size]
        size, at = _element(message, at + size, _SET)
        if at + size != end_of_attribute:
            raise _Unexpected
        raw: list[bytes] = []
        while at < end_of_attribute:
            if message[at] != _OCTET_STRING:
                raise _Unexpected
            first = message[at + 1]
            if first < 0x80:
                at += 2
                raw.append(message[at:at + first])
                at += first
            else:
                size, at = _length(message, at + 1)
                raw.append(message[at:at + size])
                at += size
        if at != end_of_attribute:
            raise _Unexpected
        name = names.get(name_bytes)
        if name is None:
            name = to_text(name_bytes)
            if len(names) < _NAMES_KEPT:
                names[name_bytes] = name
        if not raw:
            raw_pairs.append((name, None))
            text_pairs.append((name, None))
            continue
        try:
            text = [value.decode(server_encoding) for value in raw]
        except UnicodeDecodeError:
            try:
                text = [to_text(value) for value in raw]
            except UnicodeDecodeError:
                text = list(raw)
        raw_pairs.append((name, raw))
        text_pairs.append((name, text))
    if at != end_of_message:
        raise _Unexpected
    entry = DecodedEntry(raw_dn=raw_dn, dn=to_text(raw_dn))
    entry.message = message
    if case_insensitive:
        entry["raw_attributes"] = _case_insensitive(CaseInsensitiveDict, raw_pairs)
        entry["attributes"] = _case_insensitive(CaseInsensitiveDict, text_pairs)
    else:
        entry["raw_attributes"], entry["attributes"] = dict(raw_pairs), dict(text_pairs)
    return message_id, entry


def _case_insensitive(kind, pairs: list[tuple[str, Any]]):
    """ldap3's CaseInsensitiveDict as its __setitem__ leaves it after setting `pairs` in order (a name
    repeated in any case keeps its first spelling and takes the last values)."""
    out = kind()
    keymap = out._case_insensitive_keymap
    kept = out._store
    for key, value in pairs:
        ci_key = key.strip().lower()
        if ci_key in keymap:
            kept[keymap[ci_key]] = value
        else:
            kept[key] = value
            keymap[ci_key] = key
    return out


def install() -> None:
    """Give ldap3's synchronous strategy this decoder for search result entries (once per process, for every
    connection of the process: the sync never changes ldap3's configuration, whose encodings and case rule are
    read here once)."""
    from ldap3 import get_config_parameter
    from ldap3.strategy import base, sync
    from ldap3.utils.conv import to_unicode

    original_decode = sync.decode_message_fast
    if getattr(original_decode, "decodes_entries", False):
        return
    original_to_dict = base.search_result_entry_response_to_dict_fast
    server_encoding = get_config_parameter("DEFAULT_SERVER_ENCODING")
    case_insensitive = bool(get_config_parameter("CASE_INSENSITIVE_ATTRIBUTE_NAMES"))

    additional_encodings = tuple(get_config_parameter("ADDITIONAL_SERVER_ENCODINGS"))
    names: dict[bytes, str] = {}

    def to_text(value: bytes) -> str:
        """ldap3's to_unicode of server data, without its four configuration look-ups per call."""
        try:
            return value.decode(server_encoding)
        except UnicodeDecodeError:
            pass
        for encoding in additional_encodings:
            try:
                return value.decode(encoding)
            except UnicodeDecodeError:
                pass
        return to_unicode(value, from_server=True)  # raises as ldap3 does

    def decode_message_fast(message):
        if len(message) > 16 and _SEARCH_RESULT_ENTRY in message[2:12]:
            try:
                message_id, entry = decode_entry(message, server_encoding, to_text, names, case_insensitive)
            except (_Unexpected, IndexError, UnicodeError):
                pass
            else:
                return {"messageID": message_id, "protocolOp": 4, "payload": entry, "controls": None}
        return original_decode(message)

    def search_result_entry_response_to_dict_fast(response, schema, custom_formatter, check_names):
        if type(response) is DecodedEntry:
            if not check_names:
                return dict(response)
            response = original_decode(response.message)["payload"]
        return original_to_dict(response, schema, custom_formatter, check_names)

    decode_message_fast.decodes_entries = True
    decode_message_fast.original = original_decode
    search_result_entry_response_to_dict_fast.original = original_to_dict
    sync.decode_message_fast = decode_message_fast
    base.search_result_entry_response_to_dict_fast = search_result_entry_response_to_dict_fast
