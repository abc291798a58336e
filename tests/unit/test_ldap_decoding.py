"""Search answers decoded in one pass (domain_sync.ldap_answers) give exactly the entry ldap3's own decoder
gives for the same bytes: keys, text, raw values, the fallbacks for values that are not UTF-8, the
case-insensitive dicts; anything else (other messages, controls, damaged bytes) goes to ldap3's decoder."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.strategy import base, sync

from domain_sync import ldap_answers


def ber(tag: int, content: bytes, long_form: bool = False) -> bytes:
    """One BER element; `long_form` spells even a short length in the long form (valid BER)."""
    size = len(content)
    if size < 0x80 and not long_form:
        return bytes([tag, size]) + content
    octets = size.to_bytes(max(1, (size.bit_length() + 7) // 8), "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def entry_message(message_id: int, dn: bytes, attributes: list[tuple[bytes, list[bytes]]], long_form: bool = False,
                  controls: bytes = b"") -> bytes:
    partial = b"".join(ber(0x30, ber(0x04, name) + ber(0x31, b"".join(ber(0x04, v, long_form) for v in values)))
                       for name, values in attributes)
    entry = ber(0x64, ber(0x04, dn) + ber(0x30, partial, long_form), long_form)
    number = message_id.to_bytes(max(1, (message_id.bit_length() + 8) // 8), "big", signed=True)
    return ber(0x30, ber(0x02, number) + entry + controls, long_form)


def ldap3s(message: bytes, check_names: bool = False) -> tuple[int, dict]:
    """What ldap3 itself makes of the message: its message ID and entry dict."""
    decoded = sync.decode_message_fast.__dict__.get("original", sync.decode_message_fast)(message)
    to_dict = getattr(base.search_result_entry_response_to_dict_fast, "original",
                      base.search_result_entry_response_to_dict_fast)
    return decoded["messageID"], to_dict(decoded["payload"], None, None, check_names)


def fast(message: bytes, check_names: bool = False) -> tuple[int, dict]:
    """The same through the installed decoder, as ldap3's strategy calls it."""
    ldap_answers.install()
    decoded = sync.decode_message_fast(message)
    return decoded["messageID"], base.search_result_entry_response_to_dict_fast(decoded["payload"], None, None,
                                                                                 check_names)


def comparable(entry: dict) -> dict:
    """The entry with its attribute dicts as plain dicts of (spelling, value), so case and order both count."""
    return {k: list(v.items()) if k in ("attributes", "raw_attributes") else v for k, v in entry.items()}


names = st.sampled_from(["cn", "CN", "member", "objectGUID", "objectguid", "displayName", " sn ", "Zoë"]).map(
    str.encode) | st.binary(min_size=1, max_size=6)
values = st.binary(max_size=300) | st.text(max_size=40).map(str.encode)


@settings(max_examples=300)
@given(message_id=st.integers(0, 2**31 - 1), dn=values,
       attributes=st.lists(st.tuples(names, st.lists(values, max_size=5)), max_size=8), long_form=st.booleans())
def test_every_entry_decodes_as_ldap3_decodes_it(message_id, dn, attributes, long_form):
    message = entry_message(message_id, dn, attributes, long_form)
    mine, theirs = fast(message), ldap3s(message)
    assert mine[0] == theirs[0] == message_id
    assert comparable(mine[1]) == comparable(theirs[1])
    assert type(mine[1]["attributes"]) is type(theirs[1]["attributes"])


@given(message=st.binary(max_size=80), cut=st.integers(1, 40))
def test_damaged_or_other_messages_go_to_ldap3s_decoder(message, cut):
    whole = entry_message(7, b"CN=x,DC=example", [(b"cn", [b"x" * 200])])

    def outcome(decode):
        try:
            return "decoded", decode()
        except Exception as exc:  # noqa: BLE001 - failing the same way is what is compared
            return "error", type(exc).__name__

    def decode_through(message: bytes, decode, to_dict) -> dict:
        decoded = decode(message)
        if decoded["protocolOp"] != 4:
            return decoded
        return {"id": decoded["messageID"], "entry": comparable(to_dict(decoded["payload"], None, None, False))}

    ldap_answers.install()
    for damaged in (message, whole[:-cut], whole[:cut] + message + whole[cut:]):
        assert outcome(partial(decode_through, damaged, sync.decode_message_fast,
                               base.search_result_entry_response_to_dict_fast)) == outcome(
            partial(decode_through, damaged, sync.decode_message_fast.original,
                    base.search_result_entry_response_to_dict_fast.original))


def test_an_entry_with_controls_and_a_connection_that_checks_names_are_ldap3s():
    controls = ber(0xA0, ber(0x30, ber(0x04, b"1.2.3")))
    message = entry_message(3, b"CN=a,DC=example", [(b"cn", [b"a"])], controls=controls)
    assert comparable(fast(message)[1]) == comparable(ldap3s(message)[1])
    plain = entry_message(3, b"CN=a,DC=example", [(b"cn", [b"a"]), (b"objectGUID", [b"\xff\x00\x81"])])
    assert comparable(fast(plain, check_names=True)[1]) == comparable(ldap3s(plain, check_names=True)[1])
    assert type(sync.decode_message_fast(plain)["payload"]) is ldap_answers.DecodedEntry


@pytest.mark.parametrize("value,text", [("Zoë".encode(), "Zoë"), (b"\xff\xfe", "ÿþ"), (b"", "")])
def test_values_the_server_encoding_cannot_decode_take_ldap3s_fallback(value, text):
    message = entry_message(1, b"CN=v,DC=example", [(b"description", [b"plain", value])])
    assert fast(message)[1]["attributes"]["DESCRIPTION"] == ["plain", text]
    assert fast(message)[1]["raw_attributes"]["description"] == [b"plain", value]


def test_it_is_installed_once():
    ldap_answers.install()
    installed = sync.decode_message_fast
    ldap_answers.install()
    assert sync.decode_message_fast is installed and not hasattr(installed.original, "decodes_entries")
