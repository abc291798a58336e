"""The domain's schema, as far as the mapping needs it: which attributes a user or a group may hold,
and each target attribute's syntax, length limits and number of values.

Read from the domain's schema partition (attributeSchema and classSchema entries, MS-ADTS 3.1.1.2),
so that a mapping is checked against the domain it writes to, extensions included. `DEFAULT_SCHEMA`
holds the facts of Windows Server 2012 R2's schema (Samba's default, checked) for the attributes the
default mapping writes; it serves pure uses (unit tests, benchmarks) and knows no class rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from domain_sync.domain import ldap_values, read_entry, search_entries
from domain_sync.errors import PermanentError
from domain_sync.records import GROUP, USER


# attributeSyntax OIDs (MS-ADTS 3.1.1.2.2.2)
class DomainSchemaError(PermanentError):
    """The domain's schema could not be read or lacks the classes the sync writes."""


SYNTAX_NAMES = {
    "2.5.5.1": "DN", "2.5.5.2": "OID", "2.5.5.3": "case-sensitive string", "2.5.5.4": "case-insensitive string",
    "2.5.5.5": "printable/IA5 string", "2.5.5.6": "numeric string", "2.5.5.7": "DN-binary", "2.5.5.8": "boolean",
    "2.5.5.9": "integer", "2.5.5.10": "octet string", "2.5.5.11": "time", "2.5.5.12": "Unicode string",
    "2.5.5.13": "presentation address", "2.5.5.14": "DN-string", "2.5.5.15": "security descriptor",
    "2.5.5.16": "large integer", "2.5.5.17": "SID",
}
STRING_SYNTAXES = {"2.5.5.3", "2.5.5.4", "2.5.5.5", "2.5.5.6", "2.5.5.12"}
INTEGER_SYNTAXES = {"2.5.5.9", "2.5.5.16"}
BOOLEAN_SYNTAX = "2.5.5.8"
# What a Graph property (text, number, flag) can fill; DNs, binary, times and SIDs it cannot.
MAPPABLE_SYNTAXES = STRING_SYNTAXES | INTEGER_SYNTAXES | {BOOLEAN_SYNTAX}
OM_PRINTABLE = 19  # oMSyntax of printable strings (2.5.5.5); 22 is IA5 (any ASCII)
FLAG_ATTR_IS_CONSTRUCTED = 0x4  # systemFlags bit (MS-ADTS 2.2.10)

# The classes the sync creates objects of (the plan's objectClass values end with these).
OBJECT_CLASSES = {USER: "user", GROUP: "group"}


@dataclass(frozen=True)
class AttributeSchema:
    name: str
    syntax: str = "2.5.5.12"
    single_valued: bool = True
    range_lower: int | None = None
    range_upper: int | None = None
    om_syntax: int | None = None
    system_only: bool = False
    constructed: bool = False

    @property
    def syntax_name(self) -> str:
        return f"{SYNTAX_NAMES.get(self.syntax, 'unknown')} ({self.syntax})"


@dataclass(frozen=True)
class DomainSchema:
    """Attributes by lower-cased name; `allowed` maps user/group to the lower-cased names their class
    (with its superclasses and auxiliary classes) may hold, or is None when unknown."""

    attributes: dict[str, AttributeSchema]
    allowed: dict[str, frozenset[str]] | None = None
    source: str = "built-in defaults"

    def attribute(self, name: str) -> AttributeSchema | None:
        return self.attributes.get(name.lower())

    def allows(self, kind: str, name: str) -> bool | None:
        if self.allowed is None:
            return None
        return name.lower() in self.allowed[kind]

    def to_json(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        wanted = None if names is None else {n.lower() for n in names}
        return {
            "source": self.source,
            "attributes": {k: asdict(v) for k, v in sorted(self.attributes.items())
                           if wanted is None or k in wanted},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DomainSchema":
        return cls({k: AttributeSchema(**v) for k, v in data.get("attributes", {}).items()},
                   source=data.get("source", "file"))


def _unicode(name: str, lower: int | None, upper: int | None, single: bool = True) -> AttributeSchema:
    return AttributeSchema(name, "2.5.5.12", single, lower, upper, 64)


# Windows Server 2012 R2 / Samba 4.17 default schema (read from Samba with read_domain_schema).
DEFAULT_SCHEMA = DomainSchema({a.name.lower(): a for a in [
    _unicode("cn", 1, 64), _unicode("displayName", 0, 256), _unicode("givenName", 1, 64), _unicode("sn", 1, 64),
    _unicode("initials", 1, 6), _unicode("title", 1, 128), _unicode("department", 1, 64),
    _unicode("company", 1, 64), _unicode("l", 1, 128), _unicode("st", 1, 128), _unicode("co", 1, 128),
    _unicode("c", 1, 3), _unicode("postalCode", 1, 40), _unicode("streetAddress", 1, 1024),
    _unicode("physicalDeliveryOfficeName", 1, 128), _unicode("telephoneNumber", 1, 64),
    _unicode("mobile", 1, 64), _unicode("facsimileTelephoneNumber", 1, 64), _unicode("mail", 0, 256),
    _unicode("employeeID", 0, 16), _unicode("employeeNumber", 1, 512), _unicode("employeeType", 1, 256),
    _unicode("description", 0, 1024, single=False), _unicode("preferredLanguage", None, None),
    _unicode("userPrincipalName", None, 1024), _unicode("proxyAddresses", 1, 1123, single=False),
    _unicode("info", 1, 1024), _unicode("adminDescription", 0, 1024), _unicode("wWWHomePage", 1, 2048),
    _unicode("otherTelephone", 1, 64, single=False),
    AttributeSchema("countryCode", "2.5.5.9", True, 0, 65535, 2),
]})




def _first_int(value: Any) -> int | None:
    values = ldap_values(value)
    return int(values[0]) if values else None


def _true(value: Any) -> bool:
    values = ldap_values(value)
    return bool(values) and values[0].upper() == "TRUE"


def class_allowed_attributes(classes: dict[str, dict[str, Any]], name: str) -> frozenset[str]:
    """Attributes an object of class `name` may hold: its may/must lists and those of its
    superclasses and auxiliary classes, followed to the top (MS-ADTS 3.1.1.2.4)."""
    out: set[str] = set()
    seen: set[str] = set()
    todo = [name.lower()]
    while todo:
        current = todo.pop()
        if current in seen or current not in classes:
            continue
        seen.add(current)
        entry = classes[current]
        for key in ("mayContain", "systemMayContain", "mustContain", "systemMustContain"):
            out.update(v.lower() for v in ldap_values(entry.get(key)))
        for key in ("subClassOf", "auxiliaryClass", "systemAuxiliaryClass"):
            todo.extend(v.lower() for v in ldap_values(entry.get(key)))
    return frozenset(out)


def read_domain_schema(conn, names: Iterable[str]) -> DomainSchema:
    """Read the facts of `names` (attributes) and the user and group class rules from the domain's
    schema partition over a bound ldap3 connection. Fails closed: a read that does not end in success
    raises DomainReadError (domain_sync.domain), never a schema built from part of the partition."""
    from ldap3.utils.conv import escape_filter_chars

    root = read_entry(conn, "", ["schemaNamingContext"]) or {}
    schema_dns = ldap_values(root.get("schemaNamingContext"))
    if not schema_dns:
        raise DomainSchemaError("the domain's root DSE did not name its schema partition (schemaNamingContext)")
    schema_dn = schema_dns[0]

    attributes: dict[str, AttributeSchema] = {}
    wanted = sorted({n for n in names if n})
    for start in range(0, len(wanted), 100):
        chunk = wanted[start:start + 100]
        search_filter = ("(&(objectClass=attributeSchema)(|"
                         + "".join(f"(lDAPDisplayName={escape_filter_chars(n)})" for n in chunk) + "))")
        for entry in search_entries(conn, schema_dn, search_filter, scope="LEVEL", attributes=[
                "lDAPDisplayName", "attributeSyntax", "oMSyntax", "rangeLower", "rangeUpper", "isSingleValued",
                "systemOnly", "systemFlags"]):
            a = entry["attributes"]
            name = ldap_values(a.get("lDAPDisplayName"))[0]
            attributes[name.lower()] = AttributeSchema(
                name=name,
                syntax=ldap_values(a.get("attributeSyntax"))[0],
                single_valued=_true(a.get("isSingleValued")),
                range_lower=_first_int(a.get("rangeLower")),
                range_upper=_first_int(a.get("rangeUpper")),
                om_syntax=_first_int(a.get("oMSyntax")),
                system_only=_true(a.get("systemOnly")),
                constructed=bool((_first_int(a.get("systemFlags")) or 0) & FLAG_ATTR_IS_CONSTRUCTED),
            )

    classes: dict[str, dict[str, Any]] = {}
    for entry in search_entries(conn, schema_dn, "(objectClass=classSchema)", scope="LEVEL", attributes=[
            "lDAPDisplayName", "subClassOf", "auxiliaryClass", "systemAuxiliaryClass", "mayContain",
            "systemMayContain", "mustContain", "systemMustContain"]):
        name = ldap_values(entry["attributes"].get("lDAPDisplayName"))[0]
        classes[name.lower()] = entry["attributes"]
    missing = [c for c in OBJECT_CLASSES.values() if c not in classes]
    if missing:
        raise DomainSchemaError(f"the domain's schema ({schema_dn}) has no class {', '.join(missing)}")
    allowed = {kind: class_allowed_attributes(classes, cls) for kind, cls in OBJECT_CLASSES.items()}
    return DomainSchema(attributes, allowed, source=schema_dn)
