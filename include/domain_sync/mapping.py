"""The attribute mapping file: loading, checking, and applying it to tenant frames."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from domain_sync.domain_schema import (
    DEFAULT_SCHEMA,
    MAPPABLE_SYNTAXES,
    OBJECT_CLASSES,
    AttributeSchema,
    DomainSchema,
)
from domain_sync.errors import PermanentError
from domain_sync.records import GROUP, USER
from domain_sync.values import CUT, TOO_LONG_ACTIONS, fit_one


class MappingError(PermanentError, ValueError):
    """The mapping file is not usable; the message names the entry and the reason."""


# Graph properties the sync reads whatever the mapping says (they feed derived fields).
REQUIRED_SOURCES = {
    USER: ["id", "displayName", "mailNickname", "userPrincipalName", "accountEnabled", "passwordPolicies", "manager",
           "passwordProfile", "lastPasswordChangeDateTime"],
    GROUP: ["id", "displayName", "mailNickname", "securityEnabled", "members"],
}

# Graph v1.0 properties a mapping may name (user and group resources), besides extension_* ones.
KNOWN_SOURCES = {
    USER: {
        "aboutMe", "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "country",
        "createdDateTime", "department", "displayName", "employeeHireDate", "employeeId", "employeeType",
        "faxNumber", "givenName", "id", "imAddresses", "jobTitle", "lastPasswordChangeDateTime", "mail",
        "mailNickname", "manager", "mobilePhone", "officeLocation", "onPremisesSamAccountName",
        "onPremisesSyncEnabled", "otherMails", "passwordPolicies", "passwordProfile", "postalCode", "preferredLanguage",
        "proxyAddresses", "state", "streetAddress", "surname", "usageLocation", "userPrincipalName",
        "userType",
    },
    GROUP: {
        "classification", "createdDateTime", "description", "displayName", "groupTypes", "id", "mail",
        "mailEnabled", "mailNickname", "members", "proxyAddresses", "securityEnabled", "visibility",
    },
}
EXTENSION_SOURCE = re.compile(r"^extension_[0-9a-fA-F]{32}_\w+$")


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = list(value)
        return items[0] if items else None
    return value


def _join(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = [str(v) for v in value if v not in (None, "")]
        return "; ".join(items) if items else None
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "first": _first,
    "join": _join,
    "lower": _lower,
    "upper": _upper,
}

LDAP_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
# Attributes the sync derives itself; a mapping may not write them.
RESERVED_TARGETS = {"cn", "name", "samaccountname", "useraccountcontrol", "grouptype", "member",
                    "manager", "objectclass", "unicodepwd", "distinguishedname", "objectguid"}

# Attributes AD keeps on every security principal and refuses to delete (Samba: "delete protected
# attribute", LDAP code 53, checked with countryCode): a mapped value that is absent would have to
# clear them. The others of the list are system-only or derived above.
DELETE_PROTECTED = {"accountexpires", "codepage", "countrycode", "primarygroupid", "pwdlastset", "objectsid",
                    "samaccounttype", "badpasswordtime", "badpwdcount", "lastlogoff", "lastlogon", "logoncount",
                    "ntsecuritydescriptor"}


@dataclass(frozen=True)
class AttributeRule:
    target: str
    source: str
    function: str | None = None
    multi: bool = False
    # What a value longer than the target's limit becomes: "cut" to fit, or "drop" (docs/mapping.md).
    too_long: str = CUT


@dataclass(frozen=True)
class Mapping:
    users: tuple[AttributeRule, ...]
    groups: tuple[AttributeRule, ...]

    def rules(self, kind: str) -> tuple[AttributeRule, ...]:
        return self.users if kind == USER else self.groups

    def graph_select(self, kind: str) -> list[str]:
        """The $select list for a kind: what the mapping and the derived fields read."""
        names = list(REQUIRED_SOURCES[kind])
        for rule in self.rules(kind):
            if rule.source not in names:
                names.append(rule.source)
        return names

    def targets(self, kind: str) -> list[str]:
        return [r.target for r in self.rules(kind)]


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; every problem is reported with its entry."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MappingError(f"mapping file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file {path} is not valid YAML: {exc}") from exc
    return parse_mapping(document, origin=str(path))


def parse_mapping(document: Any, origin: str = "mapping") -> Mapping:
    if not isinstance(document, dict):
        raise MappingError(f"{origin}: expected sections 'users' and 'groups'")
    problems: list[str] = []
    parsed: dict[str, tuple[AttributeRule, ...]] = {}
    for kind, section in (("users", USER), ("groups", GROUP)):
        block = document.get(kind) or {}
        attributes = block.get("attributes") if isinstance(block, dict) else None
        if not isinstance(attributes, dict):
            problems.append(f"{origin}: '{kind}.attributes' must be a map of domain attribute -> rule")
            parsed[section] = ()
            continue
        rules = []
        for target, rule in attributes.items():
            where = f"{origin}: {kind}.attributes.{target}"
            if not isinstance(rule, dict) or "source" not in rule:
                problems.append(f"{where}: needs a 'source' (a Graph property)")
                continue
            unknown_keys = set(rule) - {"source", "function", "multi", "too_long"}
            if unknown_keys:
                problems.append(f"{where}: unknown keys {sorted(unknown_keys)}")
            if not LDAP_ATTRIBUTE_NAME.match(str(target)):
                problems.append(f"{where}: '{target}' is not an LDAP attribute name")
            if str(target).lower() in RESERVED_TARGETS:
                problems.append(f"{where}: '{target}' is derived by the sync and cannot be mapped")
            elif str(target).lower() in DELETE_PROTECTED:
                problems.append(f"{where}: '{target}' is kept by the domain itself, which refuses to clear it, so "
                                f"an object without a value could not be written; it cannot be mapped")
            source = str(rule["source"])
            if source not in KNOWN_SOURCES[section] and not EXTENSION_SOURCE.match(source):
                problems.append(
                    f"{where}: source '{source}' is not a Graph {section} property "
                    f"(nor an extension_<appId>_<name> attribute)"
                )
            function = rule.get("function")
            if function is not None and function not in FUNCTIONS:
                problems.append(f"{where}: function '{function}' does not exist (known: {sorted(FUNCTIONS)})")
            too_long = rule.get("too_long", CUT)
            if too_long not in TOO_LONG_ACTIONS:
                problems.append(f"{where}: too_long '{too_long}' must be one of {list(TOO_LONG_ACTIONS)}")
            if any(r.target.lower() == str(target).lower() for r in rules):
                problems.append(f"{where}: '{target}' is mapped twice")
            rules.append(AttributeRule(str(target), source, function, bool(rule.get("multi", False)), too_long))
        parsed[section] = tuple(rules)
    if problems:
        raise MappingError("mapping rejected:\n  " + "\n  ".join(problems))
    return Mapping(users=parsed[USER], groups=parsed[GROUP])


def fit_value(target: str, value: Any, schema: DomainSchema = DEFAULT_SCHEMA) -> Any:
    """One value fitted to a target attribute (the rules of transform/values.py); None clears it."""
    attribute = schema.attribute(target) or AttributeSchema(target)
    return fit_one(attribute, value, multi=isinstance(value, list))


def check_against_schema(mapping: Mapping, schema: DomainSchema, anchor_attribute: str | None = None) -> None:
    """Reject a mapping whose targets the domain cannot hold: unknown to its schema, not allowed on
    user or group objects, written only by the system, of a syntax no Graph value fills, or
    single-valued but mapped with `multi: true`. Every problem is named with its entry."""
    problems = []
    for kind, section in ((USER, "users"), (GROUP, "groups")):
        for rule in mapping.rules(kind):
            where = f"{section}.attributes.{rule.target}"
            attribute = schema.attribute(rule.target)
            if attribute is None:
                problems.append(f"{where}: the domain's schema has no attribute '{rule.target}'")
                continue
            if schema.allows(kind, rule.target) is False:
                problems.append(f"{where}: '{rule.target}' is not allowed on {kind} objects in the domain's schema "
                                f"(class {OBJECT_CLASSES[kind]} with its superclasses and auxiliary classes)")
            if attribute.system_only or attribute.constructed:
                problems.append(f"{where}: '{rule.target}' is "
                                f"{'constructed' if attribute.constructed else 'system-only'}; the domain does not "
                                f"let clients write it")
            if attribute.syntax not in MAPPABLE_SYNTAXES:
                problems.append(f"{where}: '{rule.target}' has syntax {attribute.syntax_name}, which a Graph "
                                f"property cannot fill")
            if anchor_attribute and rule.target.lower() == anchor_attribute.lower():
                problems.append(f"{where}: '{rule.target}' is the anchor attribute; the sync writes it itself")
            if rule.multi and attribute.single_valued:
                problems.append(f"{where}: '{rule.target}' is single-valued; remove 'multi: true' (or use "
                                f"function first or join)")
    if anchor_attribute:
        for kind in (USER, GROUP):
            if schema.allows(kind, anchor_attribute) is False:
                problems.append(f"anchor attribute '{anchor_attribute}' (DOMAIN_SYNC_ANCHOR_ATTRIBUTE) is not allowed "
                                f"on {kind} objects in the domain's schema")
    if problems:
        raise MappingError(f"mapping does not fit the domain's schema ({schema.source}):\n  " + "\n  ".join(problems))
