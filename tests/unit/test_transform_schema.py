"""The mapping checked against the domain's schema: targets that exist, are allowed on the class, and can
be filled from a Graph property."""

import pytest

from domain_sync.config import DEFAULT_MAPPING_FILE
from domain_sync.domain_schema import AttributeSchema, DomainSchema, class_allowed_attributes
from domain_sync.mapping import MappingError, check_against_schema, load_mapping, parse_mapping

# A schema shaped like AD's: user -> organizationalPerson -> person -> top, with auxiliary classes.
CLASSES = {
    "top": {"subClassOf": "top", "systemMayContain": ["description", "info", "adminDescription",
                                                      "mS-DS-ConsistencyGuid"]},
    "person": {"subClassOf": "top", "mayContain": ["telephoneNumber", "sn"]},
    "organizationalperson": {"subClassOf": "person", "mayContain": ["title", "employeeNumber"]},
    "securityprincipal": {"subClassOf": "top", "systemMayContain": ["sAMAccountName"]},
    "mailrecipient": {"subClassOf": "top", "mayContain": ["mail", "proxyAddresses"]},
    "user": {"subClassOf": "organizationalPerson", "auxiliaryClass": ["mailRecipient"],
             "systemAuxiliaryClass": ["securityPrincipal"], "mayContain": ["employeeID"]},
    "group": {"subClassOf": "top", "auxiliaryClass": "mailRecipient", "systemMayContain": ["member"]},
}
ATTRIBUTES = {a.name.lower(): a for a in [
    AttributeSchema("title", range_upper=128), AttributeSchema("info", range_upper=1024),
    AttributeSchema("employeeNumber", range_upper=512), AttributeSchema("employeeID", range_upper=16),
    AttributeSchema("mail", range_upper=256), AttributeSchema("description", single_valued=False),
    AttributeSchema("proxyAddresses", single_valued=False), AttributeSchema("telephoneNumber", range_upper=64),
    AttributeSchema("secretary", syntax="2.5.5.1", single_valued=False),
    AttributeSchema("memberOf", syntax="2.5.5.1", single_valued=False, system_only=True, constructed=False),
    AttributeSchema("tokenGroups", syntax="2.5.5.17", single_valued=False, constructed=True),
    AttributeSchema("mS-DS-ConsistencyGuid", syntax="2.5.5.10"),
]}
SCHEMA = DomainSchema(ATTRIBUTES, {"user": class_allowed_attributes(CLASSES, "user"),
                                   "group": class_allowed_attributes(CLASSES, "group")}, source="test schema")


def mapping(users=None, groups=None):
    return parse_mapping({"users": {"attributes": users or {}}, "groups": {"attributes": groups or {}}})


def rejection(m, anchor="mS-DS-ConsistencyGuid") -> str:
    with pytest.raises(MappingError) as err:
        check_against_schema(m, SCHEMA, anchor)
    return str(err.value)


def test_allowed_attributes_follow_superclasses_and_auxiliary_classes():
    user = class_allowed_attributes(CLASSES, "user")
    assert {"employeeid", "title", "telephonenumber", "info", "mail", "samaccountname"} <= user
    assert "employeenumber" not in class_allowed_attributes(CLASSES, "group")


def test_a_mapping_the_schema_can_hold_passes():
    check_against_schema(mapping({"info": {"source": "department"}, "employeeNumber": {"source": "employeeId"},
                                  "proxyAddresses": {"source": "proxyAddresses", "multi": True}},
                                 {"info": {"source": "description"}}), SCHEMA, "mS-DS-ConsistencyGuid")


def test_a_target_missing_from_the_schema_is_rejected_naming_the_entry():
    message = rejection(mapping({"extensionAttribute1": {"source": "department"}}))
    assert "users.attributes.extensionAttribute1: the domain's schema has no attribute 'extensionAttribute1'" in message
    assert "test schema" in message


def test_a_target_not_allowed_on_the_class_is_rejected():
    message = rejection(mapping(groups={"employeeNumber": {"source": "description"}}))
    assert "groups.attributes.employeeNumber: 'employeeNumber' is not allowed on group objects" in message


@pytest.mark.parametrize("target, words", [
    ("secretary", "syntax DN (2.5.5.1), which a Graph property cannot fill"),
    ("memberOf", "system-only"),
    ("tokenGroups", "constructed"),
    ("mS-DS-ConsistencyGuid", "is the anchor attribute"),
])
def test_targets_the_sync_cannot_write_are_rejected(target, words):
    assert words in rejection(mapping({target: {"source": "department"}}))


def test_multi_valued_rule_on_a_single_valued_attribute_is_rejected():
    assert "'title' is single-valued" in rejection(mapping({"title": {"source": "businessPhones", "multi": True}}))


def test_attributes_the_domain_refuses_to_clear_are_rejected():
    with pytest.raises(MappingError, match="'countryCode' is kept by the domain itself, which refuses to clear it"):
        mapping({"countryCode": {"source": "usageLocation"}})


def test_every_problem_is_reported_at_once():
    message = rejection(mapping({"extensionAttribute1": {"source": "city"}, "secretary": {"source": "city"}}))
    assert "extensionAttribute1" in message and "secretary" in message


def test_an_anchor_attribute_the_classes_do_not_allow_is_rejected():
    assert "anchor attribute 'employeeID'" in rejection(mapping(), anchor="employeeID")


def test_too_long_must_be_cut_or_drop():
    with pytest.raises(MappingError, match="too_long 'shorten' must be one of"):
        mapping({"title": {"source": "jobTitle", "too_long": "shorten"}})


def test_the_default_mapping_fits_the_default_schema():
    from domain_sync.domain_schema import DEFAULT_SCHEMA

    check_against_schema(load_mapping(DEFAULT_MAPPING_FILE), DEFAULT_SCHEMA, "mS-DS-ConsistencyGuid")
