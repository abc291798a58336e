"""The mapping file: defaults, checks, and its effect on records."""

import pandas as pd
import pytest

from domain_sync.config import DEFAULT_MAPPING_FILE
from domain_sync.mapping import MappingError, fit_value, load_mapping, parse_mapping
from domain_sync.records import attr_column
from domain_sync.transform.directory import user_records


def test_default_mapping_covers_microsofts_user_table():
    mapping = load_mapping(DEFAULT_MAPPING_FILE)
    targets = set(mapping.targets("user"))
    assert {"l", "company", "co", "department", "displayName", "employeeID", "facsimileTelephoneNumber",
            "givenName", "title", "mail", "mobile", "physicalDeliveryOfficeName", "postalCode",
            "preferredLanguage", "proxyAddresses", "st", "streetAddress", "sn", "telephoneNumber",
            "userPrincipalName"} <= targets
    assert {"displayName", "mail", "proxyAddresses", "description"} <= set(mapping.targets("group"))


def test_graph_select_holds_mapped_and_derived_properties():
    select = load_mapping(DEFAULT_MAPPING_FILE).graph_select("user")
    assert {"id", "mailNickname", "accountEnabled", "manager", "businessPhones", "city"} <= set(select)


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"source": "notAGraphProperty"}, "is not a Graph user property"),
        ({"source": "city", "function": "reverse"}, "function 'reverse' does not exist"),
        ({"function": "first"}, "needs a 'source'"),
    ],
)
def test_bad_rules_are_rejected_naming_the_entry(rule, message):
    with pytest.raises(MappingError) as err:
        parse_mapping({"users": {"attributes": {"l": rule}}, "groups": {"attributes": {}}})
    assert "users.attributes.l" in str(err.value) and message in str(err.value)


def test_derived_attributes_cannot_be_mapped():
    with pytest.raises(MappingError, match="derived by the sync"):
        parse_mapping({"users": {"attributes": {"sAMAccountName": {"source": "city"}}}, "groups": {"attributes": {}}})


def test_extension_attributes_are_accepted():
    source = "extension_0123456789abcdef0123456789abcdef_costCenter"
    mapping = parse_mapping({"users": {"attributes": {"info": {"source": source}}}, "groups": {"attributes": {}}})
    assert mapping.users[0].source.endswith("costCenter")


def test_values_are_cut_to_the_attribute_limit():
    assert fit_value("employeeID", "x" * 40) == "x" * 16
    assert fit_value("title", "") is None


def test_mapping_change_changes_the_records():
    users = pd.DataFrame([{"id": "11111111-0000-0000-0000-000000000000", "displayName": "A", "mailNickname": "a",
                           "userPrincipalName": "a@x.test", "accountEnabled": True, "city": "Oslo",
                           "department": "Sales"}])
    first = parse_mapping({"users": {"attributes": {"l": {"source": "city"}}}, "groups": {"attributes": {}}})
    second = parse_mapping({"users": {"attributes": {"l": {"source": "department", "function": "upper"}}},
                            "groups": {"attributes": {}}})
    assert user_records(users, first)[attr_column("l")][0] == "Oslo"
    assert user_records(users, second)[attr_column("l")][0] == "SALES"
