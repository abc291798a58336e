"""Values made to fit their target attribute (docs/mapping.md, "Values that do not fit")."""

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_sync.domain_schema import DEFAULT_SCHEMA, AttributeSchema
from domain_sync.mapping import parse_mapping
from domain_sync.naming import (
    account_name_base,
    account_name_bases,
    cn_base,
    cn_bases,
    utf16_length,
)
from domain_sync.records import attr_column
from domain_sync.transform.directory import directory_records
from domain_sync.values import CUT, DROPPED, fit_multi_series, fit_one, fit_series

EMPLOYEE_ID = DEFAULT_SCHEMA.attribute("employeeID")  # rangeUpper 16


def fit(attribute, *values, too_long=CUT):
    fitted, fixes = fit_series(pd.Series(list(values), dtype=object), attribute, too_long)
    return fitted.tolist(), fixes


def test_length_counts_utf16_code_units_and_never_splits_a_character():
    # Samba (checked) takes eight emoji in employeeID (16 units) and refuses nine.
    values, fixes = fit(EMPLOYEE_ID, "😀" * 9, "é" * 16, "x" * 17)
    assert values == ["😀" * 8, "é" * 16, "x" * 16]
    assert [(f.row, f.action, f.reason) for f in fixes] == [(0, CUT, "longer than 16"), (2, CUT, "longer than 16")]


def test_too_long_drop_leaves_the_attribute_empty_and_reports_it():
    values, fixes = fit(DEFAULT_SCHEMA.attribute("mail"), "a" * 300 + "@x.test", "ok@x.test", too_long="drop")
    assert values == [None, "ok@x.test"]
    assert fixes[0].action == DROPPED and fixes[0].shape.startswith("length 307")


def test_control_characters_and_unpaired_surrogates_are_removed_and_blank_values_clear():
    values, fixes = fit(DEFAULT_SCHEMA.attribute("title"), "a\x00b\x07c", "tab\tand\nline", "   ", "", "x\ud800y", None)
    assert values == ["abc", "tab\tand\nline", None, None, "xy", None]
    assert fixes == []


def test_values_of_the_wrong_syntax_are_dropped():
    integer = AttributeSchema("countryCode", "2.5.5.9", True, 0, 65535, 2)
    values, fixes = fit(integer, "578", " 47 ", "NO", "70000")
    assert values == ["578", "47", None, None]
    assert [(f.row, f.reason) for f in fixes] == [(2, "not an integer"), (3, "outside 0..65535")]
    printable = AttributeSchema("c2", "2.5.5.5", True, None, None, 19)
    assert fit(printable, "NO", "Ø")[0] == ["NO", None]
    assert fit(AttributeSchema("flag", "2.5.5.8"), True, "false", "maybe")[0] == ["TRUE", "FALSE", None]


def test_multi_valued_values_fit_one_by_one_and_repeats_go_as_windows_ad_compares_them():
    attribute = DEFAULT_SCHEMA.attribute("proxyAddresses")
    fitted, fixes = fit_multi_series(pd.Series([["SMTP:a@x.test", "smtp:A@X.TEST", "smtp:" + "b" * 1200, ""],
                                                None, [], ["smtp:c@x.test", "smtp:ç@x.test", "smtp:ｃ@x.test"]],
                                               dtype=object), attribute, "drop")
    assert fitted.tolist() == [["SMTP:a@x.test"], None, None, ["smtp:c@x.test"]]
    assert [(f.row, f.action) for f in fixes] == [(0, DROPPED)]


def test_repeated_values_are_fitted_once_and_every_row_is_reported():
    values, fixes = fit(EMPLOYEE_ID, "y" * 20, "ok", "y" * 20)
    assert values == ["y" * 16, "ok", "y" * 16] and [f.row for f in fixes] == [0, 2]


@given(st.text(), st.integers(min_value=1, max_value=40))
@settings(max_examples=300)
def test_any_text_fits_any_limit_and_can_be_written(text, limit):
    value = fit_one(AttributeSchema("x", range_upper=limit), text)
    if value is not None:
        assert 0 < utf16_length(value) <= limit
        value.encode("utf-8")  # no unpaired surrogate: ldap3 can send it
        assert value.strip()


@given(st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=20))
@settings(max_examples=200)
def test_column_wise_names_equal_the_per_row_rules(texts):
    anchors = [f"{i:08x}-0000-0000-0000-000000000000" for i in range(len(texts))]
    cns = cn_bases(pd.Series(texts, dtype=object), pd.Series(anchors, dtype=object)).tolist()
    assert cns == [cn_base(t, a) for t, a in zip(texts, anchors, strict=True)]
    assert all(utf16_length(c) <= 64 for c in cns)
    names = account_name_bases(pd.Series(texts, dtype=object), pd.Series(anchors, dtype=object), "user").tolist()
    assert names == [account_name_base(t, a, "user") for t, a in zip(texts, anchors, strict=True)]


def test_records_carry_fitted_values_and_the_fixes():
    users = pd.DataFrame([{"id": "11111111-0000-0000-0000-000000000000", "displayName": "A", "mailNickname": "a",
                           "userPrincipalName": "a@x.test", "accountEnabled": True, "employeeId": "1" * 30,
                           "businessPhones": ["+47 " + "9" * 80, "+47 1"]}])
    mapping = parse_mapping({"users": {"attributes": {"employeeID": {"source": "employeeId"},
                                                      "telephoneNumber": {"source": "businessPhones",
                                                                          "function": "first"}}},
                             "groups": {"attributes": {}}})
    records = directory_records(users, pd.DataFrame(columns=["id"]), pd.DataFrame(
        columns=["group_id", "member_id", "member_type"]), mapping)
    row = records.users.iloc[0]
    assert row[attr_column("employeeID")] == "1" * 16 and len(row[attr_column("telephoneNumber")]) == 64
    assert sorted(f.attribute for f in records.fixes["user"]) == ["employeeID", "telephoneNumber"]


def test_a_character_newer_than_the_interpreters_unicode_folds_the_same_column_wise():
    """pandas' Arrow strings know Unicode versions the interpreter's unicodedata does not (U+1CCD6)."""
    text = "\U0001ccd6"
    anchor = "00000000-0000-0000-0000-000000000000"
    column = account_name_bases(pd.Series([text], dtype=object), pd.Series([anchor], dtype=object), "user").tolist()
    assert column == [account_name_base(text, anchor, "user")]
