"""Observed state: what the domain holds now, read with paged searches.

A user or group under the search base (the container by default) that carries the anchor attribute
and this tenant's ownership marker is synced (ours), wherever it sits below the search base: an object
left in a former container is found by its anchor and moved, never created a second time. Every other
object is local and is only read, to keep names unique and to report collisions. Anchored objects
without the marker (Entra Connect and Cloud Sync write mS-DS-ConsistencyGuid on every object of a
hybrid domain) are counted as `unmarked`, never touched.

Reads fail closed (domain_sync.domain's `search_entries` and `entry_exists`): a paged search that ends on
anything but success raises DomainReadError, so no partial read of the domain is ever planned against.
A DN the code cannot read skips that object (reported in `unreadable`), never the run; when that object is
ours (marker and a tenant anchor), its anchor is held (`unreadable_owned`): not written, not deleted, and
never created a second time. Two objects with the same anchor are both held.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from domain_sync.dn import (
    DNError,
    ancestors,
    child_dn,
    dn_key,
    guid_from_bytes,
    is_within,
    normalize_dn,
    parent_dn,
    parent_text,
    rdn_attribute,
    rdn_value,
)
from domain_sync.domain import (
    SHOW_DELETED,
    DomainReadFailed,
    anchor_filter_value,
    check_result,
    decode_anchor,
    entry_exists,
    is_owned,
    ldap_values,
    object_kind,
    search_entries,
)
from domain_sync.naming import is_object_id, name_key

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ObservedObject:
    anchor: str
    kind: str
    dn: str
    attributes: Mapping[str, list[str]]  # by lower-case name (a dict, or the read's KeptAttributes)
    members: list[str] = field(default_factory=list)
    guid: str | None = None  # objectGUID: what every write addresses
    # A group read without its member values (an incremental plan's group that changed only through some of its
    # members, plan/incremental.py): `members` holds only those members' DNs, and this is its whole member count.
    member_total: int | None = None

    def member_count(self) -> int:
        return self.member_total if self.member_total is not None else len(self.members)

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name.lower())
        return values[0] if values else None


class KeptAttributes(Mapping):
    """An observed object's attributes by lower-case name, each a list of values, as a dict would hold them,
    in a fraction of its memory (a large read keeps twenty attributes of 100,000 users): the names are a table
    of places shared by every object of the read, and a single value is kept without a list around it (each
    `get` makes a fresh list)."""

    __slots__ = ("_slots", "_kept")

    def __init__(self, slots: dict[str, int], kept: list[Any]):
        self._slots, self._kept = slots, kept

    def get(self, name: str, default: Any = None) -> Any:
        slot = self._slots.get(name)
        value = self._kept[slot] if slot is not None and slot < len(self._kept) else None
        if value is None:
            return default
        return [value] if type(value) is str else list(value)

    def __getitem__(self, name: str) -> list[str]:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, values: list[str]) -> None:
        slot = self._slots.get(name)
        if slot is None or slot >= len(self._kept):
            raise KeyError(f"{name}: not an attribute read for this object")
        self._kept[slot] = (None if not values else values[0] if len(values) == 1 and type(values[0]) is str
                            else tuple(values))

    def __contains__(self, name: object) -> bool:
        return self.get(name) is not None  # type: ignore[arg-type]

    def __iter__(self):
        kept = self._kept
        return (name for name, slot in self._slots.items() if slot < len(kept) and kept[slot] is not None)

    def __len__(self) -> int:
        return sum(value is not None for value in self._kept)


@dataclass(frozen=True)
class KnownObject:
    """A synced object the incremental plan did not read (unchanged since the last commit), as the committed
    domain index holds it (plan/incremental.py)."""

    kind: str
    dn: str
    guid: str | None


@dataclass
class ObservedDomain:
    container_dn: str
    missing_containers: list[str]
    objects: dict[str, ObservedObject]
    # sAMAccountName and userPrincipalName of every object in the domain, lower-cased (and, for the non-ASCII
    # names folded_names lists, under their name_key too) -> its DN
    account_names: dict[str, str]
    principal_names: dict[str, str]
    # cn of local (not synced) objects directly in the container, as name_key gives them
    local_names_in_container: set[str]
    synced_dns: set[str] = field(default_factory=set)  # normalized DNs of synced objects
    # Anchors found on more than one object: every such object is held (no write), reported.
    duplicate_anchors: dict[str, list[str]] = field(default_factory=dict)
    # Objects under the search base with the anchor attribute but not this tenant's marker.
    unmarked: int = 0
    # DNs the domain returned that could not be read (each object skipped, reported).
    unreadable: list[str] = field(default_factory=list)
    # Anchors of objects carrying this sync's marker outside the search base (moved out by hand, or left by
    # a narrowed search base) -> their DN: never written, and never created a second time inside.
    owned_outside: dict[str, str] = field(default_factory=dict)
    # Anchors of objects of ours whose DN could not be read -> that DN: held like duplicate anchors (never
    # written, deleted or created a second time; a group has no UPN that would collide).
    unreadable_owned: dict[str, str] = field(default_factory=dict)
    # sAMAccountNames and UPNs (lower case) of objects whose DN could not be read -> that DN: still taken.
    unreadable_account_names: dict[str, str] = field(default_factory=dict)
    unreadable_principal_names: dict[str, str] = field(default_factory=dict)
    # Incremental plan: the synced objects not read this run (anchor -> KnownObject) and their normalized DNs
    # (-> anchor). Empty for a full read, where every synced object is in `objects`.
    known: dict[str, KnownObject] = field(default_factory=dict)
    known_keys: dict[str, str] = field(default_factory=dict)
    # The local objects directly in the container, objectGUID -> DN (kept in the domain index: the incremental
    # plan's view of the container's local names, DomainDelta.children bringing it up to date).
    local_in_container: dict[str, str] = field(default_factory=dict)
    # The objects anywhere in the domain holding a non-ASCII account name or UPN that Windows AD takes for another
    # (folded_name_keys): objectGUID -> [DN, sAMAccountName keys, UPN keys]; their keys are in account_names and
    # principal_names too. Kept in the domain index (DomainDelta.folded brings it up to date): Samba's matching
    # does not find them when the incremental plan looks a name up.
    folded_names: dict[str, list] = field(default_factory=dict)

    def not_found(self, anchors: set[str]) -> set[str]:
        """The anchors no object of ours under the search base carries (readable or not): candidates for a create."""
        return set(anchors) - set(self.objects) - set(self.duplicate_anchors) - set(self.unreadable_owned)

    def is_synced_dn(self, dn: str) -> bool:
        key = normalize_dn(dn)
        return key in self.synced_dns or key in self.known_keys

    def known_dn(self, anchor: str) -> str:
        """The DN a full plan gives an unchanged object it keeps where it is: its cn under the container when
        it sits there (the form of a DN the plan builds), else its DN as read."""
        return self._plan_form(self.known[anchor].dn)

    def current_dn(self, anchor: str) -> str | None:
        """Where an object of ours that the plan does not move sits now (read, or from the index), in the form
        known_dn gives; None when it is not in the domain as one object."""
        obj = self.objects.get(anchor)
        if obj is not None:
            return self._plan_form(obj.dn)
        return self.known_dn(anchor) if anchor in self.known else None

    def _plan_form(self, dn: str) -> str:
        if normalize_dn(parent_dn(dn)) == normalize_dn(self.container_dn):
            return child_dn("CN", rdn_value(dn), self.container_dn)
        return dn

    def anchors_by_dn(self) -> dict[str, str]:
        """{DN as read: anchor} of the synced objects (read, or known from the index), each as the normalized
        DNs map it (`known_keys`, then the objects read): a member value is spelt as its object's DN, so one
        that matches needs no parsing (a group may hold every user)."""
        key_of = {a: k for k, a in self.known_keys.items()}
        read_keys = {normalize_dn(o.dn) for o in self.objects.values()}
        out = {k.dn: a for a, k in self.known.items() if key_of.get(a) is not None and key_of[a] not in read_keys}
        out.update({o.dn: a for a, o in self.objects.items()})
        return out

    def member_dns(self) -> dict[str, str]:
        """anchors_by_dn when the member values read outnumber a tenth of the synced objects (parsing a DN
        costs about ten look-ups of one), else nothing: the member values are parsed."""
        values = sum(len(o.members) for o in self.objects.values())
        return self.anchors_by_dn() if values * 10 > len(self.known) + len(self.objects) else {}

    def drop_unreadable(self, synced: dict[str, str] | None = None) -> None:
        """Leave out every DN the code cannot read (an account name's holder, a group's member, a
        manager value), each reported in `unreadable`: one odd DN skips that entry, never the plan. The
        names such an object holds stay taken. `synced`: DNs known to be readable (anchors_by_dn)."""
        synced = synced or {}

        def readable(dn: str) -> bool:
            if dn in synced or dn_key(dn) is not None:
                return True
            log.warning("skipping a DN the domain returned that cannot be read: %r", dn)
            if dn not in self.unreadable:
                self.unreadable.append(dn)
            return False

        for names, held in ((self.account_names, self.unreadable_account_names),
                            (self.principal_names, self.unreadable_principal_names)):
            for name in [n for n, dn in names.items() if not readable(dn)]:
                held[name] = names.pop(name)
        for obj in self.objects.values():
            obj.members = [m for m in obj.members if readable(m)]
            if "manager" in obj.attributes:
                obj.attributes["manager"] = [m for m in obj.attributes["manager"] if readable(m)]


def observe_domain(
    conn,
    base_dn: str,
    container_dn: str,
    anchor_attribute: str,
    mapped_attributes: list[str],
    search_base: str | None = None,
    owner_attribute: str | None = None,
    owner_marker: str | None = None,
    desired: set[str] = frozenset(),
    connect_more: Callable[[], Any] | None = None,
    outside_guids: dict[str, str] | None = None,
) -> ObservedDomain:
    """`desired`: the anchors of the tenant objects to plan; only when one of them is not found under the
    search base (a create) is the whole domain searched for objects of ours outside it (`owned_outside`).
    `connect_more`: opens another connection (closed here), for reads made at once. `outside_guids`: the
    objects of ours outside the search base are searched whatever is found, and their {anchor: objectGUID} put
    there (the domain index keeps them)."""
    search_base = search_base or container_dn
    # Containers, outermost first.
    missing = [d for d in ancestors(container_dn, base_dn) if not entry_exists(conn, d)]

    attributes = synced_attributes(anchor_attribute, mapped_attributes, owner_attribute, owner_marker)
    # The search base holds the container: when it is missing (a first run), nothing is synced yet.
    synced_there = entry_exists(conn, search_base)

    def read_names(c) -> tuple[dict[str, str], dict[str, str], dict[str, list]]:
        account: dict[str, str] = {}
        principal: dict[str, str] = {}
        folded: dict[str, list] = {}
        for entry in search_entries(c, base_dn, "(|(sAMAccountName=*)(userPrincipalName=*))",
                                  ["sAMAccountName", "userPrincipalName", "objectGUID"]):
            attrs = entry["attributes"]
            sams, upns = ldap_values(attrs.get("sAMAccountName")), ldap_values(attrs.get("userPrincipalName"))
            for name in sams:
                account[name.lower()] = entry["dn"]
            for name in upns:
                principal[name.lower()] = entry["dn"]
            raw_guid = _get(entry.get("raw_attributes", {}), "objectGUID")
            if raw_guid and (held := folded_entry(entry["dn"], sams, upns)) is not None:
                folded[guid_from_bytes(raw_guid[0])] = held
        add_folded_names(account, principal, folded.values())
        return account, principal, folded

    collector = SyncedCollector(anchor_attribute, owner_attribute, owner_marker)
    sorting = threading.Lock()  # one collector for both reads of synced objects: a duplicate anchor is seen whole

    def read_synced(object_class: str) -> Callable[[Any], None]:
        def read(c) -> None:
            if synced_there:
                query = f"(&(objectClass={object_class})({anchor_attribute}=*))"
                for entry in search_entries(c, search_base, query, attributes):
                    with sorting:
                        collector.add(entry)
        return read

    # Three reads at once, each on a connection of its own when `connect_more` opens one: the synced users,
    # the synced groups (with their members), every name in the domain. The client decodes one answer while
    # the DC prepares the others.
    *_, (account_names, principal_names, folded_names) = in_parallel(conn, connect_more, [read_synced("group"),
                                                                            read_synced("user"), read_names])
    collector.warn_duplicates()
    objects, synced_dns, duplicates = collector.objects, collector.synced_dns, collector.duplicates
    unreadable, unreadable_owned, unmarked = collector.unreadable, collector.unreadable_owned, collector.unmarked

    # Names taken in the container by anything that is not synced: new cns must avoid them.
    local_names: set[str] = set()
    local_in_container: dict[str, str] = {}
    if not missing:
        for entry in search_entries(conn, container_dn, "(cn=*)", ["cn", "objectGUID"], scope="LEVEL"):
            if dn_key(entry["dn"]) not in synced_dns:
                local_names.update(name_key(v) for v in ldap_values(entry["attributes"].get("cn")))
                raw_guid = _get(entry.get("raw_attributes", {}), "objectGUID")
                if raw_guid and _named_by_cn(entry["dn"]):
                    local_in_container[guid_from_bytes(raw_guid[0])] = entry["dn"]
    log.info(
        "observed domain: %d synced objects under %s, %d account names, %d missing containers",
        len(objects), search_base, len(account_names), len(missing),
    )
    if unmarked:
        log.warning("%d objects under %s carry %s without this sync's ownership marker; they are not ours and "
                    "are left alone", unmarked, search_base, anchor_attribute)
    observed = ObservedDomain(container_dn, missing, objects, account_names, principal_names, local_names,
                              synced_dns, duplicates, unmarked, unreadable, unreadable_owned=unreadable_owned,
                              local_in_container=local_in_container, folded_names=folded_names)
    if observed.not_found(desired) or outside_guids is not None:
        observed.owned_outside = owned_outside(conn, base_dn, search_base, anchor_attribute, owner_attribute,
                                               owner_marker, guid_of=outside_guids)
    return observed


SYNCED_FILTER = "(&(|(objectClass=user)(objectClass=group)){anchor})"


def in_parallel(conn, connect_more: Callable[[], Any] | None, reads: list[Callable[[Any], Any]]) -> list:
    """The results of `reads` (each given a connection): the first on `conn`, the others at once on
    connections of their own from `connect_more` (closed after); one after another on `conn` without it.
    A read that fails raises here, after the others ended."""
    from concurrent.futures import ThreadPoolExecutor

    from domain_sync.domain import disconnect

    if connect_more is None or len(reads) < 2:
        return [read(conn) for read in reads]

    def on_own(read):
        own = connect_more()
        try:
            return read(own)
        finally:
            disconnect(own)

    with ThreadPoolExecutor(max_workers=len(reads) - 1) as pool:
        futures = [pool.submit(on_own, read) for read in reads[1:]]
        first = reads[0](conn)
        return [first, *(f.result() for f in futures)]


def synced_attributes(anchor_attribute: str, mapped_attributes: list[str], owner_attribute: str | None,
                      owner_marker: str | None, extra: tuple[str, ...] = ()) -> list[str]:
    """What is read of each synced object: what the plan compares, addresses and checks ownership by."""
    marker_attribute = owner_attribute if owner_attribute and owner_marker else None
    return sorted({"objectClass", "cn", "sAMAccountName", "userAccountControl", "pwdLastSet", "groupType",
                   "objectGUID", "member", "manager", anchor_attribute, *mapped_attributes, *extra,
                   *([marker_attribute] if marker_attribute else [])})


class SyncedCollector:
    """Sorts the entries of a search for anchored users and groups: ours (by anchor), duplicates, unmarked
    (anchored, not this sync's marker), unreadable DNs (held when ours)."""

    def __init__(self, anchor_attribute: str, owner_attribute: str | None, owner_marker: str | None):
        self.anchor_attribute, self.owner_attribute, self.owner_marker = anchor_attribute, owner_attribute, owner_marker
        self.objects: dict[str, ObservedObject] = {}
        self.synced_dns: set[str] = set()
        self.duplicates: dict[str, list[str]] = {}
        self.unreadable: list[str] = []
        self.unreadable_owned: dict[str, str] = {}
        self.unmarked = 0
        self.extra: dict[str, dict[str, list[str]]] = {}  # anchor -> attributes read beside the compared ones
        self._values: dict[str, str] = {}  # each value kept once, for as long as the read lasts
        self._slots: dict[str, int] = {}  # attribute name (lower case) -> its place in every KeptAttributes

    def add(self, entry: dict, extra: tuple[str, ...] = ()) -> None:
        anchor_attribute = self.anchor_attribute
        try:
            normalize_dn(entry["dn"])
        except DNError as exc:
            log.warning("skipping an object the domain returned: %s", exc)
            self.unreadable.append(entry["dn"])
            anchor = _owned_anchor(entry, anchor_attribute, self.owner_attribute, self.owner_marker)
            if anchor is not None:
                self.unreadable_owned[anchor] = entry["dn"]
            return
        if not is_owned(entry["attributes"], self.owner_attribute, self.owner_marker):
            self.unmarked += 1
            return
        kind = object_kind(entry["attributes"])
        anchor_raw = _get(entry.get("raw_attributes", {}), anchor_attribute)
        if kind is None or not anchor_raw:
            return
        anchor = decode_anchor(anchor_attribute, anchor_raw[0])
        if not is_object_id(anchor):
            log.warning("object %s has %s %r, not a tenant object id; treated as local", entry["dn"],
                        anchor_attribute, anchor if anchor is None else anchor[:80])
            return
        objects, duplicates = self.objects, self.duplicates
        if anchor in duplicates or anchor in objects:
            duplicates.setdefault(anchor, [objects.pop(anchor).dn] if anchor in objects else []).append(entry["dn"])
            self.synced_dns.add(normalize_dn(entry["dn"]))
            return
        raw_guid = _get(entry.get("raw_attributes", {}), "objectGUID")
        skip = {"member", "objectguid", "objectclass", anchor_attribute.lower(), *(e.lower() for e in extra)}
        # What is kept of 100,000 users is most of a full plan's memory: equal values are one object (departments,
        # offices, managers, flags), and the attributes sit in KeptAttributes.
        shared, slots = self._values, self._slots
        kept: list[Any] = [None] * len(slots)
        for name, value in entry["attributes"].items():
            key = name.lower()
            if key in skip:
                continue
            values = ldap_values(value)
            slot = slots.setdefault(sys.intern(key), len(slots))
            if slot >= len(kept):
                kept += [None] * (slot + 1 - len(kept))
            kept[slot] = (shared.setdefault(values[0], values[0]) if len(values) == 1
                          else tuple(shared.setdefault(v, v) for v in values))
        attributes = KeptAttributes(slots, kept)
        if extra:
            self.extra[anchor] = {e.lower(): ldap_values(_get(entry["attributes"], e)) for e in extra}
        objects[anchor] = ObservedObject(
            anchor=anchor,
            kind=kind,
            dn=entry["dn"],
            attributes=attributes,
            members=ldap_values(entry["attributes"].get("member")),
            guid=guid_from_bytes(raw_guid[0]) if raw_guid else None,
        )
        self.synced_dns.add(normalize_dn(entry["dn"]))

    def warn_duplicates(self) -> None:
        for anchor, holders in sorted(self.duplicates.items()):
            log.warning("anchor %s is on %d objects (%s): all of them are held, none is written", anchor,
                        len(holders), "; ".join(sorted(holders)))


def owned_outside(conn, base_dn: str, search_base: str, anchor_attribute: str, owner_attribute: str | None,
                  owner_marker: str | None, guids: set[str] | None = None,
                  guid_of: dict[str, str] | None = None) -> dict[str, str]:
    """{anchor: DN} of users and groups with this sync's marker anywhere in the domain outside the search base:
    searched on the marker attribute (often unindexed) in every subtree beside the way down to the search base,
    never in it (a full plan runs this on every reconcile; the search base holds every synced object).
    Nothing to search without a marker, or when the search base is the domain. `guids`: only the objects with
    these objectGUIDs, by batched filters on the indexed objectGUID over the whole domain (the incremental
    plan's). `guid_of`: filled with {anchor: objectGUID} of what was found."""
    from ldap3.utils.conv import escape_filter_chars

    if not (owner_attribute and owner_marker) or normalize_dn(search_base) == normalize_dn(base_dn):
        return {}
    found: dict[str, str] = {}
    query = f"(&(|(objectClass=user)(objectClass=group))({owner_attribute}={escape_filter_chars(owner_marker)}){{}})"
    if guids is None:
        searches = [(base, scope, query.format("")) for base, scope in outside_subtrees(conn, base_dn, search_base)]
    else:
        searches = [(base_dn, "SUBTREE", query.format(b)) for b in _batches(guid_terms(guids))]
    entries = (entry for base, scope, q in searches for entry in search_entries(
        conn, base, q, ["objectClass", "objectGUID", anchor_attribute, owner_attribute], scope=scope))
    for entry in entries:
        if dn_key(entry["dn"]) is not None and is_within(entry["dn"], search_base):
            continue
        anchor = _owned_anchor(entry, anchor_attribute, owner_attribute, owner_marker)
        if anchor is not None:
            found[anchor] = entry["dn"]
            raw_guid = _get(entry.get("raw_attributes", {}), "objectGUID")
            if guid_of is not None and raw_guid:
                guid_of[anchor] = guid_from_bytes(raw_guid[0])
    if found:
        log.warning("%d objects with this sync's marker are outside the search base %s (moved there by hand?): "
                    "they are not written, and not created again: %s", len(found), search_base,
                    "; ".join(sorted(found.values())[:20]))
    return found


_LEAVES = frozenset({"user", "group"})  # a computer is a user to LDAP


def outside_subtrees(conn, base_dn: str, search_base: str) -> list[tuple[str, str]]:
    """(base, scope) of searches that cover the domain outside the search base and nothing in it: the children
    of each container on the way down from the domain to the search base (one-level) and the subtree of each
    of those children that may hold objects (anything but a user, computer or group, under which the schema
    puts no user or group) off that way. A container of the way that does not exist ends it (nothing is below
    it). A search base outside the domain's DN: the whole domain (SUBTREE)."""
    if not is_within(search_base, base_dn):
        return [(base_dn, "SUBTREE")]
    way = [base_dn, *ancestors(search_base, base_dn)]
    out: list[tuple[str, str]] = []
    for container, next_down in zip(way, way[1:], strict=False):
        out.append((container, "LEVEL"))
        on_the_way = normalize_dn(next_down)
        way_goes_on = False
        for entry in search_entries(conn, container, "(objectClass=*)", ["objectClass"], scope="LEVEL"):
            if dn_key(entry["dn"]) == on_the_way:
                way_goes_on = True
            elif not {c.lower() for c in ldap_values(_get(entry["attributes"], "objectClass"))} & _LEAVES:
                out.append((entry["dn"], "SUBTREE"))
        if not way_goes_on:
            break
    return out


def guid_terms(guids: set[str]) -> list[str]:
    """(objectGUID=<escaped bytes>) filter terms, sorted."""
    return sorted("(objectGUID=" + "".join(f"\\{b:02x}" for b in uuid.UUID(g).bytes_le) + ")" for g in guids)


def _owned_anchor(entry: dict, anchor_attribute: str, owner_attribute: str | None,
                  owner_marker: str | None) -> str | None:
    """The tenant object id an entry of this sync's carries (None: not ours, or no tenant anchor)."""
    if object_kind(entry["attributes"]) is None or not is_owned(entry["attributes"], owner_attribute, owner_marker):
        return None
    raw = _get(entry.get("raw_attributes", {}), anchor_attribute)
    anchor = decode_anchor(anchor_attribute, raw[0]) if raw else None
    return anchor if is_object_id(anchor) else None


def _parent_key(dn: str) -> str | None:
    """The normalized DN of what holds `dn` (each parent's text normalized once: normalize_dn's cache)."""
    text = parent_text(dn)
    try:
        return normalize_dn(text) if text is not None else None
    except DNError:
        return None


def _named_by_cn(dn: str) -> bool:
    """Whether the DN's first RDN is a cn (what a cn the plan gives can meet)."""
    try:
        return rdn_attribute(dn).lower() == "cn"
    except DNError:
        return False


def _get(attrs: dict, name: str):
    for key, value in attrs.items():
        if key.lower() == name.lower():
            return value
    return None




# ---- targeted reads of the incremental plan (plan/incremental.py)

FILTER_BATCH = 200  # terms of one OR filter


def _batches(terms: list[str]) -> list[str]:
    return [f"(|{''.join(terms[i:i + FILTER_BATCH])})" for i in range(0, len(terms), FILTER_BATCH)]


def observe_anchors(conn, search_base: str, collector: SyncedCollector, anchors: set[str], attributes: list[str],
                    extra: tuple[str, ...] = ()) -> None:
    """Read the users and groups under the search base that carry one of `anchors` (batched OR filters on the
    anchor attribute, binary anchors as escaped bytes) into `collector`, as observe_domain reads them all."""
    terms = sorted(f"({collector.anchor_attribute}={anchor_filter_value(collector.anchor_attribute, a)})"
                   for a in anchors)
    for batch in _batches(terms):
        for entry in search_entries(conn, search_base, SYNCED_FILTER.format(anchor=batch), attributes):
            collector.add(entry, extra)


def observe_guids(conn, search_base: str, collector: SyncedCollector, guids: set[str], attributes: list[str],
                  extra: tuple[str, ...] = ()) -> None:
    """Read the users and groups under the search base with one of `guids` (objectGUID, indexed) into
    `collector`, whatever anchor they carry now."""
    for batch in _batches(guid_terms(guids)):
        for entry in search_entries(conn, search_base, SYNCED_FILTER.format(anchor=batch), attributes):
            collector.add(entry, extra)


def observe_names(conn, base_dn: str, container_dn: str, account_names: set[str], principal_names: set[str],
                  common_names: set[str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The holders of the given sAMAccountNames and UPNs anywhere in the domain ({lower-cased name: DN}, every
    name the holder has, as observe_domain maps them) and of the given cns directly in the container
    ({name_key of the cn: DN})."""
    from ldap3.utils.conv import escape_filter_chars

    held_account: dict[str, str] = {}
    held_principal: dict[str, str] = {}
    terms = sorted({f"(sAMAccountName={escape_filter_chars(n)})" for n in account_names}
                   | {f"(userPrincipalName={escape_filter_chars(n)})" for n in principal_names})
    for batch in _batches(terms):
        for entry in search_entries(conn, base_dn, batch, ["sAMAccountName", "userPrincipalName"]):
            attrs = entry["attributes"]
            sams, upns = ldap_values(attrs.get("sAMAccountName")), ldap_values(attrs.get("userPrincipalName"))
            for name in sams:
                held_account[name.lower()] = entry["dn"]
            for name in upns:
                held_principal[name.lower()] = entry["dn"]
            # A DC that matches as Windows AD does answers "müller" for "muller": held under its key too.
            if (held := folded_entry(entry["dn"], sams, upns)) is not None:
                add_folded_names(held_account, held_principal, [held])
    held_cn: dict[str, str] = {}
    for batch in _batches(sorted({f"(cn={escape_filter_chars(n)})" for n in common_names})):
        for entry in search_entries(conn, container_dn, batch, ["cn"], scope="LEVEL"):
            for value in ldap_values(entry["attributes"].get("cn")):
                held_cn[name_key(value)] = entry["dn"]
    return held_account, held_principal, held_cn


def folded_name_keys(names: Iterable[str]) -> list[str]:
    """The keys (naming.name_key) of the non-ASCII names among `names` that their lower case does not give:
    Windows AD takes "Müller" or a full-width "ｍｕｌｌｅｒ" for the "muller" the sync would name a new account
    (account names it gives are ASCII), where Samba's matching does not."""
    return sorted({key for name in names if not name.isascii() and (key := name_key(name)) != name.lower()})


def folded_entry(dn: str, account_names: list[str], principal_names: list[str]) -> list | None:
    """[DN, sAMAccountName keys, UPN keys] of an object holding names folded_name_keys gives keys for, else None."""
    sams, upns = folded_name_keys(account_names), folded_name_keys(principal_names)
    return [dn, sams, upns] if sams or upns else None


def add_folded_names(account_names: dict[str, str], principal_names: dict[str, str],
                     entries: Iterable[list]) -> None:
    """Each folded entry's keys (folded_entry) as names its object holds ({name: DN}, a name held as it is kept)."""
    for dn, sams, upns in entries:
        for key in sams:
            account_names.setdefault(key, dn)
        for key in upns:
            principal_names.setdefault(key, dn)


def cns_held_by_key(cns: set[str], container_dn: str, local: Iterable[str],
                    settled: Mapping[str, str]) -> dict[str, str]:
    """Of `cns` (wanted directly in the container), those another object holds under the plan's comparison
    key (naming.name_key, as the full plan compares the container's cns), {name_key of the cn: DN}: a local one
    (`local`: DNs of the container's local objects, ObservedDomain.local_in_container) or a synced one the plan
    does not read (`settled`: {normalized DN: DN}, from the domain index). The DC's own matching finds only what
    its rules see: Samba compares without case alone (and folds neither 'ß' to 'ss' nor Georgian Mtavruli),
    Windows AD also without accents, width and kana type."""
    wanted = {name_key(cn) for cn in cns}
    if not wanted:
        return {}
    held: dict[str, str] = {}
    for dn in local:
        if (key := cn_key(dn)) in wanted:
            held.setdefault(key, dn)
    # A settled object's normalized DN in ASCII holds its key as it is (name_key of ASCII is its case folding);
    # only the others (few) have their keys made.
    for key in wanted:
        dn = settled.get(normalize_dn(child_dn("CN", key, container_dn)))
        if dn is not None:
            held.setdefault(key, dn)
    container_key = normalize_dn(container_dn)
    for normalized, dn in settled.items():
        if (not normalized.isascii() and parent_text(normalized) == container_key
                and (key := _cn_key_of_normalized(normalized)) in wanted):
            held.setdefault(key, dn)
    return held


def cn_key(dn: str) -> str | None:
    """name_key of the cn a DN starts with; None when its first RDN is no cn (or the DN does not parse)."""
    try:
        return name_key(rdn_value(dn)) if _named_by_cn(dn) else None
    except DNError:
        return None


def _cn_key_of_normalized(normalized: str) -> str | None:
    """name_key of the cn a normalized DN (normalize_dn) starts with; None when its first RDN is no cn."""
    if not normalized.startswith("cn="):
        return None
    if "\\" not in normalized and "+" not in normalized:
        return name_key(normalized[3:normalized.index(",")])
    return cn_key(normalized)


@dataclass
class DomainDelta:
    """What changed in the domain since a highestCommittedUSN: the anchors and objectGUIDs of users and groups
    changed or moved anywhere in the domain, the objectGUIDs of objects deleted since, and the containers
    (organizational units, containers) that changed, by objectGUID (a rename or a move of one moves the
    objects below it without changing them)."""

    anchors: set[str] = field(default_factory=set)
    guids: set[str] = field(default_factory=set)
    guids_of: dict[str, set[str]] = field(default_factory=dict)  # anchor (lower case) -> objectGUIDs carrying it
    deleted_guids: set[str] = field(default_factory=set)
    containers: dict[str, str] = field(default_factory=dict)  # objectGUID -> DN now
    # Every live object changed, objectGUID -> its DN when it is a local object directly in the container, else
    # None (elsewhere, or synced): what brings the index's local_in_container up to date.
    children: dict[str, str | None] = field(default_factory=dict)
    # Every live object changed, objectGUID -> its folded_entry (None: no folded names): what brings the
    # index's folded_names up to date.
    folded: dict[str, list | None] = field(default_factory=dict)
    entries: int = 0

    def folded_names(self, before: Mapping[str, list]) -> dict[str, list]:
        """ObservedDomain.folded_names: `before` (as the last plan left them) with this delta's changes and
        deletions."""
        return self._updated(before, self.folded)

    def local_in_container(self, before: Mapping[str, str]) -> dict[str, str]:
        """The container's local objects (objectGUID -> DN): `before` (as the last plan left them) with this
        delta's changes and deletions."""
        return self._updated(before, self.children)

    def _updated(self, before: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """{objectGUID: value} as the last plan left it, less the objects deleted since, with each changed
        object's value now (None: it no longer has one)."""
        out = {g: value for g, value in before.items() if g not in self.deleted_guids}
        for guid, value in changes.items():
            if value is None:
                out.pop(guid, None)
            else:
                out[guid] = value
        return out


CONTAINER_CLASSES = {"organizationalunit", "container", "builtindomain"}


def changed_since(conn, base_dn: str, anchor_attribute: str, usn: int, container_dn: str | None = None,
                  owner_attribute: str | None = None, owner_marker: str | None = None) -> DomainDelta:
    """Every object under the domain whose uSNChanged is above `usn` (live ones, then tombstones with the
    Show Deleted control: they keep objectGUID, not the anchor). With `container_dn`, which of the live ones
    are local objects directly in it (not synced: the owner rule of SyncedCollector)."""
    delta = DomainDelta()
    since = f"(uSNChanged>={int(usn) + 1})"
    container = dn_key(container_dn) if container_dn else None
    read = ["objectClass", "objectGUID", "sAMAccountName", "userPrincipalName", anchor_attribute,
            *([owner_attribute] if owner_attribute else [])]
    for entry in search_entries(conn, base_dn, since, read):
        delta.entries += 1
        attrs = entry["attributes"]
        raw = entry.get("raw_attributes", {})
        raw_guid = _get(raw, "objectGUID")
        if raw_guid:
            delta.folded[guid_from_bytes(raw_guid[0])] = folded_entry(
                entry["dn"], ldap_values(_get(attrs, "sAMAccountName")), ldap_values(_get(attrs, "userPrincipalName")))
        if container is not None and raw_guid:
            local = (_parent_key(entry["dn"]) == container and _named_by_cn(entry["dn"])
                     and _owned_anchor(entry, anchor_attribute, owner_attribute, owner_marker) is None)
            delta.children[guid_from_bytes(raw_guid[0])] = entry["dn"] if local else None
        if object_kind(attrs) is not None:
            if raw_guid:
                delta.guids.add(guid_from_bytes(raw_guid[0]))
            anchor_raw = _get(raw, anchor_attribute)
            anchor = decode_anchor(anchor_attribute, anchor_raw[0]) if anchor_raw else None
            if is_object_id(anchor):
                delta.anchors.add(anchor.lower())
                if raw_guid:
                    delta.guids_of.setdefault(anchor.lower(), set()).add(guid_from_bytes(raw_guid[0]))
            continue
        classes = {c.lower() for c in ldap_values(_get(attrs, "objectClass"))}
        if classes & CONTAINER_CLASSES and raw_guid:
            delta.containers[guid_from_bytes(raw_guid[0])] = entry["dn"]
    for entry in search_entries(conn, base_dn, f"(&(isDeleted=TRUE){since})", ["objectGUID"],
                              controls=[SHOW_DELETED]):
        delta.entries += 1
        raw_guid = _get(entry.get("raw_attributes", {}), "objectGUID")
        if raw_guid:
            delta.deleted_guids.add(guid_from_bytes(raw_guid[0]))
    return delta


# The Deleted Objects container's well-known GUID (MS-ADTS 6.1.1.4, GUID_DELETED_OBJECTS_CONTAINER_W).
DELETED_OBJECTS_WKGUID = "18e2ea80684f11d2b9aa00c04f79f805"


def tombstones_visible(conn, base_dn: str) -> bool:
    """Whether this connection's account sees deleted objects: the Show Deleted control shows a tombstone only
    to an account that may list the Deleted Objects container and read its objects, which AD (and Samba) grant
    to administrators alone by default. A delegated account (full control of the sync's organizational unit and
    nothing more) sees none, not even of objects it deleted itself, and its search for deletions finds nothing
    without an error. False as well in a domain that holds no tombstone at all. One page of one entry is asked
    for, whatever the container holds."""
    conn.search(f"<WKGUID={DELETED_OBJECTS_WKGUID},{base_dn}>", "(objectClass=*)", search_scope="LEVEL",
                attributes=["1.1"], controls=[SHOW_DELETED], paged_size=1)
    try:
        check_result(conn, "looking for deleted objects")
    except DomainReadFailed:  # no such object, or no right to it
        return False
    return any(entry.get("type") == "searchResEntry" for entry in conn.response or [])


def missing_guids(conn, search_base: str, guids: set[str], delta: DomainDelta) -> set[str]:
    """Of `guids` (objects under the search base: synced ones, the container's local ones), those no longer
    there and not among the domain's changes (`delta`: a changed object was moved, not deleted): deleted, where
    tombstones cannot tell (tombstones_visible). One read of every object's objectGUID under the search base."""
    present = _guids_found(conn, search_base, "(objectClass=*)")
    return {g.lower() for g in guids} - present - {g.lower() for g in delta.guids} - {
        g.lower() for g in delta.children}


def guids_present(conn, base_dn: str, guids: set[str]) -> set[str]:
    """Those of `guids` an object anywhere under `base_dn` still has (batched objectGUID filters)."""
    return set().union(*(_guids_found(conn, base_dn, batch) for batch in _batches(guid_terms(guids))))


def _guids_found(conn, base: str, search_filter: str) -> set[str]:
    """The objectGUIDs of the objects a search finds."""
    found: set[str] = set()
    for entry in search_entries(conn, base, search_filter, ["objectGUID"]):
        raw = _get(entry.get("raw_attributes", {}), "objectGUID")
        if raw:
            found.add(guid_from_bytes(raw[0]))
    return found


def container_guids(conn, dns: set[str]) -> dict[str, str]:
    """{objectGUID: normalized DN} of the given containers (those that are there)."""
    out = {}
    for dn in sorted(dns):
        if not entry_exists(conn, dn):
            continue
        for entry in search_entries(conn, dn, "(objectClass=*)", ["objectGUID"], scope="BASE"):
            raw = _get(entry.get("raw_attributes", {}), "objectGUID")
            if raw:
                out[guid_from_bytes(raw[0])] = normalize_dn(dn)
    return out
