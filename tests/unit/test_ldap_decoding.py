"""The search answers' text conversion installed by domain._decode_values_once gives ldap3's own text and
errors for every input (it only skips ldap3's per-call configuration lookups)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.operation import search

from domain_sync.domain import _decode_values_once


def outcome(convert, *args):
    try:
        return "text", convert(*args)
    except Exception as exc:  # noqa: BLE001 - the error is part of what must be the same
        return "error", type(exc).__name__, str(exc)


def installed():
    _decode_values_once()
    return search.to_unicode, search.to_unicode.original


@given(value=st.one_of(st.binary(max_size=12), st.text(max_size=8).map(str.encode), st.text(max_size=8),
                       st.integers(), st.builds(bytearray, st.binary(max_size=6))),
       encoding=st.sampled_from([None, "utf-8", "latin-1", "ascii"]), from_server=st.booleans())
def test_the_conversion_is_ldap3s_for_every_value(value, encoding, from_server):
    fast, original = installed()
    assert outcome(fast, value, encoding, from_server) == outcome(original, value, encoding, from_server)


def test_it_is_installed_once_and_the_search_answers_decode_as_with_ldap3s_own(monkeypatch):
    fast, original = installed()
    _decode_values_once()
    assert search.to_unicode is fast and not getattr(original, "decodes_once", False)
    vals = [(0, 0, 0, "Zoë".encode()), (0, 0, 0, b"\xff\xfe"), (0, 0, 0, b"")]  # not UTF-8: ldap3's fallbacks
    attribute = (0, 0, 0, [(0, 0, 0, b"description"), (0, 0, 0, vals)])
    decoded = dict(search.attributes_to_dict_fast([attribute]))
    monkeypatch.setattr(search, "to_unicode", original)
    assert decoded == dict(search.attributes_to_dict_fast([attribute])) == {"description": ["Zoë", "ÿþ", ""]}


@pytest.mark.parametrize("value", [b"plain", "Zoë".encode()])
def test_server_text_is_decoded_with_the_server_encoding(value):
    fast, _ = installed()
    assert fast(value, from_server=True) == value.decode("utf-8")
