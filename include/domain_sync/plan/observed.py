"""Observed state: what the domain holds now, read with paged searches.

A user or group under the search base (the whole domain by default) that carries the anchor
attribute is synced (ours), wherever it sits: an object left in a former container is found by its
anchor and moved, never created a second time. Every other object is local and is only read, to
keep names unique and to report collisions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from domain_sync.dn import normalize_dn
from domain_sync.domain import decode_anchor, ldap_values
from domain_sync.records import GROUP, USER

log = logging.getLogger(__name__)

PAGE_SIZE = 500


@dataclass
class ObservedObject:
    anchor: str
    kind: str
    dn: str
    attributes: dict[str, list[str]]
    members: list[str] = field(default_factory=list)

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name.lower())
        return values[0] if values else None


@dataclass
class ObservedDomain:
    container_dn: str
    missing_containers: list[str]
    objects: dict[str, ObservedObject]
    # Lower-cased sAMAccountName and userPrincipalName of every object in the domain -> its DN
    account_names: dict[str, str]
    principal_names: dict[str, str]
    # cn of local (not synced) objects directly in the container, lower-cased
    local_names_in_container: set[str]
    synced_dns: set[str] = field(default_factory=set)  # normalized DNs of synced objects

    def is_synced_dn(self, dn: str) -> bool:
        return normalize_dn(dn) in self.synced_dns


def _kind(object_classes: list[str]) -> str | None:
    classes = {c.lower() for c in object_classes}
    if "group" in classes:
        return GROUP
    if "user" in classes and "computer" not in classes:
        return USER
    return None


def _paged(conn, base: str, search_filter: str, attributes: list[str], scope: str = "SUBTREE"):
    return conn.extend.standard.paged_search(
        base, search_filter, search_scope=scope, attributes=attributes, paged_size=PAGE_SIZE, generator=True
    )


def _exists(conn, dn: str) -> bool:
    conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["objectClass"])
    return bool(conn.entries) or conn.result.get("result") == 0 and bool(conn.response)


def observe_domain(
    conn,
    base_dn: str,
    container_dn: str,
    anchor_attribute: str,
    mapped_attributes: list[str],
    search_base: str | None = None,
) -> ObservedDomain:
    search_base = search_base or base_dn
    # Containers, outermost first.
    levels = []
    dn = container_dn
    while dn and normalize_dn(dn) != normalize_dn(base_dn):
        levels.append(dn)
        dn = dn.split(",", 1)[1] if "," in dn else ""
    missing = [d for d in reversed(levels) if not _exists(conn, d)]

    account_names: dict[str, str] = {}
    principal_names: dict[str, str] = {}
    for entry in _paged(conn, base_dn, "(|(sAMAccountName=*)(userPrincipalName=*))",
                        ["sAMAccountName", "userPrincipalName"]):
        if entry.get("type") != "searchResEntry":
            continue
        attrs = entry["attributes"]
        for name in ldap_values(attrs.get("sAMAccountName")):
            account_names[name.lower()] = entry["dn"]
        for name in ldap_values(attrs.get("userPrincipalName")):
            principal_names[name.lower()] = entry["dn"]

    objects: dict[str, ObservedObject] = {}
    synced_dns: set[str] = set()
    wanted = sorted({"objectClass", "cn", "sAMAccountName", "userAccountControl", "groupType",
                     "member", "manager", anchor_attribute, *mapped_attributes})
    synced_filter = f"(&(|(objectClass=user)(objectClass=group))({anchor_attribute}=*))"
    # The search base holds the container: when it is missing (a first run), nothing is synced yet.
    found = _paged(conn, search_base, synced_filter, wanted) if _exists(conn, search_base) else []
    for entry in found:
        if entry.get("type") != "searchResEntry":
            continue
        kind = _kind(ldap_values(entry["attributes"].get("objectClass")))
        anchor_raw = _get(entry.get("raw_attributes", {}), anchor_attribute)
        if kind is None or not anchor_raw:
            continue
        anchor = decode_anchor(anchor_attribute, anchor_raw[0])
        if anchor is None:
            log.warning("object %s has an unreadable %s; treated as local", entry["dn"], anchor_attribute)
            continue
        if anchor in objects:
            log.warning("anchor %s is on %s and on %s; the second is treated as local", anchor,
                        objects[anchor].dn, entry["dn"])
            continue
        attributes = {
            name.lower(): ldap_values(value)
            for name, value in entry["attributes"].items()
            if name.lower() not in ("member", anchor_attribute.lower())
        }
        objects[anchor] = ObservedObject(
            anchor=anchor,
            kind=kind,
            dn=entry["dn"],
            attributes=attributes,
            members=ldap_values(entry["attributes"].get("member")),
        )
        synced_dns.add(normalize_dn(entry["dn"]))

    # Names taken in the container by anything that is not synced: new cns must avoid them.
    local_names: set[str] = set()
    if not missing:
        for entry in _paged(conn, container_dn, "(cn=*)", ["cn"], scope="LEVEL"):
            if entry.get("type") == "searchResEntry" and normalize_dn(entry["dn"]) not in synced_dns:
                local_names.update(v.casefold() for v in ldap_values(entry["attributes"].get("cn")))
    log.info(
        "observed domain: %d synced objects under %s, %d account names, %d missing containers",
        len(objects), search_base, len(account_names), len(missing),
    )
    return ObservedDomain(container_dn, missing, objects, account_names, principal_names, local_names, synced_dns)


def _get(attrs: dict, name: str):
    for key, value in attrs.items():
        if key.lower() == name.lower():
            return value
    return None


