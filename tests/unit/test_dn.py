"""DN escaping, parsing and building (include/domain_sync/dn.py): the one place DNs are handled."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.dn import parse_dn as ldap3_parse_dn

from domain_sync.dn import (
    DNError,
    ancestors,
    build_dn,
    child_dn,
    dns_domain_name,
    escape_rdn_value,
    first_rdn,
    guid_dn,
    is_within,
    normalize_dn,
    parent_dn,
    parent_text,
    parse_dn,
    rdn_value,
)

BASE = "DC=corp,DC=example,DC=test"
CONTAINER = f"OU=AADDC Users,{BASE}"
# Every character a display name can hold (no lone surrogates: they are not text).
values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64)


@given(values)
def test_a_child_dn_round_trips_through_our_parser_and_ldap3s(value):
    dn = child_dn("CN", value, CONTAINER)
    assert rdn_value(dn) == value
    assert parent_dn(dn) == CONTAINER
    assert len(ldap3_parse_dn(dn, escape=False, strip=False)) == 5


@given(values, values)
def test_parents_and_rdns_survive_special_characters_on_both_sides(cn, ou):
    parent = child_dn("OU", ou, BASE)
    dn = child_dn("CN", cn, parent)
    assert normalize_dn(parent_dn(dn)) == normalize_dn(parent)
    assert rdn_value(first_rdn(dn)) == cn
    assert is_within(dn, parent) and is_within(dn, BASE)
    assert ancestors(dn, BASE) == [build_dn(parse_dn(parent)), build_dn(parse_dn(dn))]


@given(values, values)
def test_the_parents_text_is_the_parsed_parent_for_dns_escaped_as_the_dc_and_the_key_write_them(cn, ou):
    dn = child_dn("CN", cn, child_dn("OU", ou, BASE))
    for form in (dn, normalize_dn(dn)):
        assert normalize_dn(parent_text(form)) == normalize_dn(parent_dn(dn))
    assert parent_text(child_dn("CN", cn, "")) is None
    assert parent_text("cn=Smith\\2C John\\\\,ou=A\\,B,dc=test") == "ou=A\\,B,dc=test"  # hex, an escaped backslash


def test_rfc4514_specials_are_escaped():
    assert escape_rdn_value(' #a,b+c"d\\e<f>g;h=i ') == '\\ \\#a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i\\ '
    assert escape_rdn_value("a\x00b") == "a\\00b"


@pytest.mark.parametrize(("returned", "value"), [
    ("CN=Star \\?,OU=AADDC Users,DC=corp,DC=example,DC=test", "Star ?"),  # Samba escapes '?'
    ("cn=Smith\\2C John,ou=AADDC Users,dc=corp,dc=example,dc=test", "Smith, John"),  # hex escape, lower case
    ("CN=Ren\\C3\\A9e,OU=AADDC Users,DC=corp,DC=example,DC=test", "Renée"),  # UTF-8 as hex
    ("CN=Renée , OU=AADDC Users , DC=corp,DC=example,DC=test", "Renée"),  # spaces around separators
    ("CN=\\ lead\\ ,OU=AADDC Users,DC=corp,DC=example,DC=test", " lead "),
    ("CN=\\#hash,OU=AADDC Users,DC=corp,DC=example,DC=test", "#hash"),
])
def test_dns_that_ad_compatible_servers_return_are_read(returned, value):
    assert rdn_value(returned) == value
    assert normalize_dn(parent_dn(returned)) == normalize_dn(CONTAINER)


def test_a_container_with_an_escaped_comma_is_one_rdn():
    dn = "CN=Smith\\, John,OU=Sales\\, EMEA,DC=corp,DC=example,DC=test"
    assert parent_dn(dn) == "OU=Sales\\, EMEA,DC=corp,DC=example,DC=test"
    assert rdn_value(parent_dn(dn)) == "Sales, EMEA"


def test_multi_valued_rdns_and_case_are_compared_as_the_same_entry():
    assert normalize_dn("CN=a+UID=b,DC=x") == normalize_dn("uid=B+cn=A,dc=X")
    assert normalize_dn("CN=John Smith,DC=x") == normalize_dn("cn=john smith,dc=x")


@pytest.mark.parametrize("broken", ["no equals sign", "CN=trailing\\", "=value,DC=x", "CN=\\FF\\FE,DC=x"])
def test_a_dn_that_cannot_be_read_raises_a_dn_error_naming_it(broken):
    with pytest.raises(DNError, match="DN"):
        parse_dn(broken)


def test_the_dns_domain_name_comes_from_the_dc_components():
    assert dns_domain_name(CONTAINER) == "corp.example.test"


def test_objects_are_addressed_by_guid():
    assert guid_dn("C796E9A0-7253-412F-A366-41C2B7BEE25C") == "<GUID=c796e9a0-7253-412f-a366-41c2b7bee25c>"


dn_texts = st.text(st.sampled_from(list("CNOUDc=,+ ;#\\\"aé\t.-1")), max_size=40)


@given(dn_texts)
def test_the_plain_parse_reads_what_the_full_parser_reads(dn):
    """DNs without escapes are split as text (the fast path): the same RDNs as the full parser, or its error."""
    from domain_sync.dn import _parse_escaped, _parse_plain

    plain = _parse_plain(dn) if "\\" not in dn and ";" not in dn and "#" not in dn else None
    try:
        full = _parse_escaped(dn)
    except DNError:
        assert plain is None
        return
    assert plain is None or plain == full


@given(values)
def test_escaping_skips_only_values_that_need_none(value):
    from domain_sync.dn import _RDN_SPECIAL

    needs = any(ch in _RDN_SPECIAL or ord(ch) < 32 or ch == "\x7f" for ch in value) or value[:1] == " " \
        or value[-1:] == " "
    assert (escape_rdn_value(value) != value) == needs
