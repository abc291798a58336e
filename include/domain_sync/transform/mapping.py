"""The attribute mapping file: loading, checking, and applying it to tenant frames."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from domain_sync.records import GROUP, USER


class MappingError(ValueError):
    """The mapping file is not usable; the message names the entry and the reason."""


# Graph properties the sync reads whatever the mapping says (they feed derived fields).
REQUIRED_SOURCES = {
    USER: ["id", "displayName", "mailNickname", "userPrincipalName", "accountEnabled", "passwordPolicies", "manager"],
    GROUP: ["id", "displayName", "mailNickname", "securityEnabled", "members"],
}

# Graph v1.0 properties a mapping may name (user and group resources), besides extension_* ones.
KNOWN_SOURCES = {
    USER: {
        "aboutMe", "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "country",
        "createdDateTime", "department", "displayName", "employeeHireDate", "employeeId", "employeeType",
        "faxNumber", "givenName", "id", "imAddresses", "jobTitle", "lastPasswordChangeDateTime", "mail",
        "mailNickname", "manager", "mobilePhone", "officeLocation", "onPremisesSamAccountName",
        "onPremisesSyncEnabled", "otherMails", "passwordPolicies", "postalCode", "preferredLanguage",
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

# rangeUpper of target attributes in the AD schema (Windows Server 2012 R2 and Samba's default);
# a value longer than this is cut to fit instead of failing the write.
ATTRIBUTE_LIMITS = {
    "displayName": 256, "givenName": 64, "sn": 64, "initials": 6, "title": 128, "department": 64,
    "company": 64, "l": 128, "st": 128, "co": 128, "postalCode": 40, "streetAddress": 1024,
    "physicalDeliveryOfficeName": 128, "telephoneNumber": 64, "mobile": 64,
    "facsimileTelephoneNumber": 64, "mail": 256, "employeeID": 16, "description": 1024,
    "preferredLanguage": 64, "userPrincipalName": 1024, "proxyAddresses": 1123, "cn": 64,
}
LDAP_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
# Attributes the sync derives itself; a mapping may not write them.
RESERVED_TARGETS = {"cn", "name", "samaccountname", "useraccountcontrol", "grouptype", "member",
                    "manager", "objectclass", "unicodepwd", "distinguishedname", "objectguid"}


@dataclass(frozen=True)
class AttributeRule:
    target: str
    source: str
    function: str | None = None
    multi: bool = False

    def convert(self, value: Any) -> Any:
        if self.function:
            value = FUNCTIONS[self.function](value)
        return value


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
            unknown_keys = set(rule) - {"source", "function", "multi"}
            if unknown_keys:
                problems.append(f"{where}: unknown keys {sorted(unknown_keys)}")
            if not LDAP_ATTRIBUTE_NAME.match(str(target)):
                problems.append(f"{where}: '{target}' is not an LDAP attribute name")
            if str(target).lower() in RESERVED_TARGETS:
                problems.append(f"{where}: '{target}' is derived by the sync and cannot be mapped")
            source = str(rule["source"])
            if source not in KNOWN_SOURCES[section] and not EXTENSION_SOURCE.match(source):
                problems.append(
                    f"{where}: source '{source}' is not a Graph {section} property "
                    f"(nor an extension_<appId>_<name> attribute)"
                )
            function = rule.get("function")
            if function is not None and function not in FUNCTIONS:
                problems.append(f"{where}: function '{function}' does not exist (known: {sorted(FUNCTIONS)})")
            rules.append(AttributeRule(str(target), source, function, bool(rule.get("multi", False))))
        parsed[section] = tuple(rules)
    if problems:
        raise MappingError("mapping rejected:\n  " + "\n  ".join(problems))
    return Mapping(users=parsed[USER], groups=parsed[GROUP])


def fit_value(target: str, value: Any) -> Any:
    """Cut a value to the target attribute's length limit; empty values become None."""
    if value is None:
        return None
    if isinstance(value, list):
        items = [fit_value(target, v) for v in value]
        return [v for v in items if v is not None] or None
    text = str(value)
    if text == "":
        return None
    limit = ATTRIBUTE_LIMITS.get(target)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    return text
