"""The incremental plan: the delta round's plan made for the objects that changed, not for everyone.

A full reconcile reads the whole domain (every account name, every synced object with its members) and
diffs every tenant object. A delta round changes a few objects, so the plan reads and diffs only the
changed set C and gives the same change set a full reconcile would give (tests/unit/test_incremental.py
and the convergence tests compare both). C is:

- the objects this round brought from the tenant (extract's staged ids), objects entering or leaving scope
  (transform's records notes), objects failing in earlier runs that are not held (domain_sync.failing),
  objects released from validation's quarantine since the last commit;
- the tenant objects the committed domain index does not hold (new ones, creates of the last run, creates
  that failed) and the indexed objects the tenant no longer has (deletes, and deletes that failed);
- the objects of the last committed plan's collisions (a name they wanted may be free now), duplicate
  anchors and objects it could not read ("sticky" in the index); the groups it gave a member it created
  ("recount": read whole, their member count is not known from the plan alone);
- what changed in the domain since the last commit: every object whose uSNChanged is above the
  highestCommittedUSN the committed plan read before it observed the domain, live or deleted (hand edits,
  renames, moves, member removals, deletions; a tombstone keeps its objectGUID, mapped back to its anchor by
  the index), so every hand change is corrected on the next run as a full reconcile would; and the synced
  objects whose cn a local object added or renamed in the container since holds under the plan's key
  (naming.name_key: a name Samba takes for another, Windows AD for the same), which a full plan suffixes;
- then the objects whose desired state depends on those and differs from the domain there: groups where the
  records and the domain disagree on a changed object's membership (the records' member pairs against its
  memberOf as read), and users where they disagree on a changed object being their manager (the records'
  manager against its directReports as read). A group or report on which both agree needs nothing for it:
  member and manager values are links the domain carries along when an object is renamed or moved, so an
  object changed in place or renamed, in the tenant or in the domain (the last run's own writes among
  them), makes none; one that comes (not in the domain yet) or goes makes every group and report the
  records or the domain give it.

A group that is in C only as a dependent did not change on either side (a member added or removed in the
tenant changes the group there, in the domain its uSNChanged): only some of its members changed. It is read
without its member values (a group may hold every user), and its membership is diffed for the members in C
alone: the desired ones from the records, the ones it has from their memberOf (read with them), so its adds
and removals are the full diff's. Its member count is the index's, which holds each group's count as the
last plan left it (DomainIndex.after: the count read, moved by that plan's member adds and removals). The
domain drops a deleted member's value without changing the group's uSNChanged, so a group desiring a member
deleted in the domain is read whole (a member the tenant no longer has, deleted by the sync, stays counted
until the group's next whole read, as for any settled group).

A group the tenant changed only through its members (transform's groups_changed_by_members: the round
brought it, its record is the kept one) and that is in C for no other reason is diffed the same way: read
without its member values, for the members in C, to which the members the round added to it or removed from
it are added (read whole, their groups without their member values, as dependents are). A big group losing
a few members (users deleted in the tenant) costs those members, not the group.

Everything else is settled: in the domain as the last plan left it (nothing changed on either side since).
The plan reads C by anchor, and the names it checks (the UPNs and their local parts, the account names a new
object may get, the cns in the container) by name. A settled object a changed one names (a manager, a
member) is taken from the index: where it is and its objectGUID.

The domain index (<state>/<version>/domain_index.parquet, written by the plan, kept by commit): anchor,
kind, DN, normalized DN, objectGUID and member count of every synced object; beside it domain_index.json
with the highestCommittedUSN and the DC (dsServiceName) it was read at, a fingerprint of the settings that
shape the plan, the sticky anchors, the anchors validation quarantined, and the unmarked count of the last
full read. The guards take their totals from it: synced objects per kind (deletion share, apply's failure
share), member counts (membership share), and the objects the sync owns (create guard); the unmarked count
is the last full read's, or the changed set's when higher.

A full reconcile runs instead (plan.json's `plan_mode` says which ran and why) on a full resync, a full
read in the round (a new or expired delta link), without a committed index, when the settings fingerprint
(mapping file, anchor, owner, container, search base, scope, initial passwords, the domain's schema) or the
DC changed, when a container under the search base changed (a renamed or moved OU moves what is under it
without touching it), for the on-demand sync of chosen objects, when more than half the objects changed,
or when DOMAIN_SYNC_PLAN_MODE=full. The drift check runs with full_resync, so it is a full reconcile.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from domain_sync.columns import isin, isin_lowered, lowered, record_rows
from domain_sync.dn import dn_key, dns_domain_name, normalize_dn, parent_dn, rdn_value, same_dn
from domain_sync.naming import account_name_options, common_name_options
from domain_sync.plan.changeset import Collision, PlanInputs, plan_changes
from domain_sync.plan.observed import (
    DomainDelta,
    KnownObject,
    ObservedDomain,
    ObservedObject,
    SyncedCollector,
    add_folded_names,
    changed_since,
    cn_key,
    cns_held_by_key,
    container_guids,
    guids_present,
    missing_guids,
    observe_anchors,
    observe_domain,
    observe_guids,
    observe_names,
    owned_outside,
    synced_attributes,
    tombstones_visible,
)
from domain_sync.records import ATTR_PREFIX, GROUP, USER, ChangeSet, Op
from domain_sync.runs import RunFolder
from domain_sync.storage import StoragePath, read_bytes, read_json, read_parquet, write_json_atomic, write_parquet

log = logging.getLogger(__name__)

# 2: the container's local objects (meta "local"); 3: names compared as Windows AD compares them (naming.name_key),
# where a full plan gives the suffix to a synced object whose cn another object of the container holds so, and
# the domain's objects holding names only that comparison finds (meta "folded_names").
INDEX_FORMAT = 3
INDEX_FILE = "domain_index.parquet"
META_FILE = "domain_index.json"
INDEX_COLUMNS = ["anchor", "kind", "dn", "key", "guid", "members"]
# Account names looked up per new object: its base, the 9 suffixed forms, then counters up to -10.
ACCOUNT_NAME_OPTIONS = 19
# More changed objects than this share of the synced ones (and at least MIN_FULL_OBJECTS): a full read is cheaper.
MAX_CHANGED_SHARE = 0.5
MIN_FULL_OBJECTS = 200
BACKLINKS = ("memberOf", "directReports")
FULL, INCREMENTAL = "full", "incremental"


class FullReconcileNeeded(Exception):
    """The incremental plan cannot stand for a full one here; the reason says why (plan.json's plan_mode)."""


@dataclass
class DomainIndex:
    frame: pd.DataFrame
    meta: dict

    @classmethod
    def committed(cls, state) -> DomainIndex | None:
        """The index the last commit kept (None: none, or unreadable)."""
        path, meta_path = state.committed_file(INDEX_FILE), state.committed_file(META_FILE)
        if path is None or meta_path is None:
            return None
        meta = read_json(meta_path, None)
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
            return None
        return cls(read_parquet(path), meta)

    def write(self, run: RunFolder) -> None:
        write_parquet(self.frame[INDEX_COLUMNS], run.domain_index)
        write_json_atomic(run.domain_index_meta, self.meta)

    def after(self, changes) -> DomainIndex:
        """The index as the plan's `changes` leave the domain: each group's member count moved by the member
        values the plan adds and removes. The plan's guards take the counts before (as read); the index a commit
        keeps holds the counts after, which is what the next plan finds in the domain for a group it does not
        read whole (a group whose writes fail is read whole by the next plan: failing objects are changed).
        Only values naming existing objects (`<GUID=...>`) are counted: apply drops a value naming an object
        whose create failed, so a group given a member this plan creates is recounted instead (`recount` in
        the meta: the next incremental plan reads it whole)."""
        moved: dict[str, int] = {}
        recount: set[str] = set()
        for c in changes:
            if c.op in (Op.ADD_MEMBERS, Op.REMOVE_MEMBERS) and c.members:
                existing = sum(1 for v in c.members if v.startswith("<GUID="))
                if existing < len(c.members):
                    recount.add(c.anchor.lower())
                step = existing if c.op == Op.ADD_MEMBERS else -existing
                moved[c.anchor.lower()] = moved.get(c.anchor.lower(), 0) + step
        if not moved:
            return self
        frame = self.frame.copy()
        rows = np.flatnonzero(isin_lowered(frame["anchor"], moved))
        delta = np.zeros(len(frame), dtype=int)
        delta[rows] = [moved[a] for a in lowered(frame["anchor"].iloc[rows])]
        counts = pd.to_numeric(frame["members"], errors="coerce").fillna(0).astype(int).to_numpy() + delta
        frame["members"] = np.maximum(counts, 0)
        return DomainIndex(frame, {**self.meta, "recount": sorted(recount)})

    def synced_counts(self) -> dict[str, int]:
        counts = self.frame["kind"].value_counts()
        return {kind: int(counts.get(kind, 0)) for kind in (USER, GROUP)}

    def group_members(self) -> dict[str, int]:
        groups = self.frame[self.frame["kind"] == GROUP]
        return dict(zip(groups["anchor"], groups["members"].astype(int), strict=True))


def index_frame(objects) -> pd.DataFrame:
    """The index rows of observed synced objects (ObservedObject values)."""
    rows = [(o.anchor, o.kind, o.dn, normalize_dn(o.dn), o.guid, o.member_count()) for o in objects]
    return pd.DataFrame(rows, columns=INDEX_COLUMNS)


def updated_index(previous: pd.DataFrame, changed: set[str], observed: ObservedDomain) -> pd.DataFrame:
    """The committed index with the changed anchors (lower case) as this plan read them: gone when not found."""
    kept = previous[~isin_lowered(previous["anchor"], changed)]
    return pd.concat([kept, index_frame(observed.objects.values())], ignore_index=True)


def new_meta(root: dict, fingerprint: str, sticky: set[str], quarantined: set[str], unmarked: int,
             containers: dict[str, str] | None = None, outside: dict[str, str] | None = None,
             observed: ObservedDomain | None = None) -> dict:
    return {"format": INDEX_FORMAT, "usn": root["usn"], "server": root["server"], "fingerprint": fingerprint,
            "sticky": sorted(sticky), "quarantined": sorted(a.lower() for a in quarantined), "unmarked": unmarked,
            "containers": containers or {}, "outside": outside or {},
            "local": observed.local_in_container if observed else {},
            "folded_names": observed.folded_names if observed else {}}


def holding_containers(frame: pd.DataFrame, search_base: str) -> set[str]:
    """The containers the indexed objects sit in, and theirs up to the search base (normalized DNs): renaming
    or moving one moves synced objects without changing them."""
    from domain_sync.dn import is_within, parent_text

    out: set[str] = set()
    for key in {parent_text(k) for k in frame["key"].tolist()}:
        while key and key not in out and is_within(key, search_base):
            out.add(key)
            key = parent_text(key)
    return out


def read_root(conn) -> dict:
    """highestCommittedUSN and dsServiceName of the DC, read before anything else of the domain: whatever
    changes after it has a higher uSNChanged and is read by the next incremental plan."""
    from domain_sync.domain import ldap_values, read_entry

    attrs = read_entry(conn, "", ["highestCommittedUSN", "dsServiceName"]) or {}
    usn = ldap_values(attrs.get("highestCommittedUSN"))
    server = ldap_values(attrs.get("dsServiceName"))
    return {"usn": int(usn[0]) if usn else None, "server": server[0] if server else None}


def settings_fingerprint(settings, base_dn: str, owner_marker: str | None, target_schema: StoragePath | None) -> str:
    """sha256 of what shapes the desired state and where the plan looks: a change of any of these makes the
    index stale, and the next plan a full reconcile."""
    mapping = Path(settings.mapping_file)
    schema = read_bytes(target_schema) if target_schema is not None else None
    parts = {
        "format": INDEX_FORMAT,
        "mapping": hashlib.sha256(mapping.read_bytes()).hexdigest() if mapping.exists() else None,
        "schema": hashlib.sha256(schema).hexdigest() if schema is not None else None,
        "base_dn": normalize_dn(base_dn),
        "owner_marker": owner_marker,
        **{name: getattr(settings, name) for name in ("anchor_attribute", "owner_attribute", "container",
                                                       "search_base", "scope_groups", "initial_password")},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def full_reason(*, mode_setting: str, full_resync: bool, chosen: bool, links: dict, index: DomainIndex | None,
                fingerprint: str) -> str | None:
    """Why this plan must be a full reconcile, known before the domain is read (None: the incremental plan
    may run; root_reason tells once the root DSE is read)."""
    if mode_setting == FULL:
        return "DOMAIN_SYNC_PLAN_MODE=full"
    if full_resync:
        return "a full resync"
    if chosen:
        return "the on-demand sync of chosen objects"
    if not links:
        return "no delta links in the round"
    full_reads = sorted(r for r, entry in links.items() if entry.get("full_read"))
    if full_reads:
        return f"a full read of {', '.join(full_reads)} in the round"
    if index is None:
        return "no committed domain index"
    if index.meta.get("fingerprint") != fingerprint:
        return "the mapping or the settings that shape the plan changed since the last commit"
    return None


def root_reason(index: DomainIndex, root: dict) -> str | None:
    """Why the domain's root DSE rules out the incremental plan: no USN, another DC, a USN gone back."""
    if root.get("usn") is None or index.meta.get("usn") is None:
        return "no highestCommittedUSN"
    if root.get("server") != index.meta.get("server"):
        return f"another domain controller ({root.get('server')}) than the last commit's ({index.meta.get('server')})"
    if int(root["usn"]) < int(index.meta["usn"]):
        return "the domain's highestCommittedUSN went back (a restored domain controller)"
    return None


@dataclass
class ChangeInputs:
    """What the changed set is made of (all anchors lower case)."""

    tenant: set[str]  # staged ids of the round
    scope_changed: set[str]
    failing: set[str]  # failing objects not held
    records: set[str]  # every tenant record's anchor
    quarantined: set[str]  # validation's quarantine now
    out_of_scope: set[str]
    index: pd.DataFrame
    meta: dict
    delta: DomainDelta = field(default_factory=DomainDelta)
    # group -> the members the round added or removed, of the groups the tenant changed only so (transform)
    by_members: dict[str, set[str]] = field(default_factory=dict)

    @cached_property
    def indexed(self) -> set[str]:
        """The index's anchors (lower case), taken once per plan."""
        return set(lowered(self.index["anchor"]))

    def anchors_of_guids(self, guids: Iterable[str]) -> set[str]:
        """The index's anchors (lower case) of these objectGUIDs (any case)."""
        rows = self.index[isin_lowered(self.index["guid"], {g.lower() for g in guids})]
        return set(lowered(rows["anchor"]))

    def guids_of(self, anchors: set[str]) -> set[str]:
        """Every objectGUID under which these anchors (lower case) were seen: in the index, outside the search
        base (the meta's "outside"), in the domain's changes since the last plan."""
        rows = self.index[isin_lowered(self.index["anchor"], anchors)]
        out = {g for g in rows["guid"].tolist() if isinstance(g, str)}
        outside = self.meta.get("outside") or {}
        for anchor in anchors:
            if anchor in outside:
                out.add(outside[anchor])
            out |= self.delta.guids_of.get(anchor, set())
        return out

    def cn_taken_by_local(self) -> set[str]:
        """The index's objects (anchors, lower case) whose cn a local object added or renamed since in the same
        container holds under the plan's key (naming.name_key): Samba lets both be where Windows AD would not,
        and a full plan gives the synced one its suffix."""
        taken: dict[str, set[str]] = {}  # container DN -> cns of local objects added or renamed there
        for dn in self.delta.children.values():
            if dn is not None and cn_key(dn) is not None:
                taken.setdefault(parent_dn(dn), set()).add(rdn_value(dn))
        if not taken:
            return set()
        anchors = dict(zip(self.index["key"].tolist(), self.index["anchor"].tolist(), strict=True))
        return {a.lower() for container, cns in taken.items()
                for a in cns_held_by_key(cns, container, [], anchors).values()}

    def anchor_of_key(self, keys: set[str]) -> dict[str, str]:
        """{normalized DN: anchor as indexed} of the index's objects at these normalized DNs."""
        rows = self.index[isin(self.index["key"], keys)]
        return dict(zip(rows["key"].tolist(), rows["anchor"].tolist(), strict=True))


def changed_set(c: ChangeInputs) -> dict[str, set[str]]:
    """{reason: anchors (lower case)} of the changed set before its dependents (see the module's doc)."""
    indexed = c.indexed
    previously_quarantined = set(c.meta.get("quarantined") or [])
    domain = set(c.delta.anchors) | c.anchors_of_guids(c.delta.guids)
    reasons = {
        "tenant": c.tenant,
        "scope": c.scope_changed,
        "failing": c.failing,
        "released": previously_quarantined - c.quarantined,
        "not_indexed": c.records - indexed - c.quarantined,
        "not_in_tenant": indexed - c.records - c.out_of_scope,
        "sticky": set(c.meta.get("sticky") or []),
        "recount": set(c.meta.get("recount") or []),
        "domain": domain,
        "deleted_in_domain": c.anchors_of_guids(c.delta.deleted_guids),
        "cn_taken_by_local": c.cn_taken_by_local(),
    }
    return {k: {a.lower() for a in v} for k, v in reasons.items() if v}


def backlink_keys(backlinks: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """{DN as read: normalized DN} of the backlink values read ({anchor: {link: DNs}}), each DN normalized
    once; a DN that does not parse or encode is left out (it names no synced object)."""
    keys = {dn: dn_key(dn) for links in backlinks.values() for dns in links.values() for dn in dns}
    return {dn: key for dn, key in keys.items() if key is not None}


def dependents(changed: set[str], users: pd.DataFrame, members: pd.DataFrame,
               backlinks: dict[str, dict[str, list[str]]], key_of_dn: dict[str, str],
               anchor_of_key: dict[str, str], held: set[str] = frozenset()) -> set[str]:
    """Objects whose desired state depends on a changed one and differs from the domain there (lower case):
    for each changed object, the groups where the records and the domain disagree on its membership (the
    records' member pairs against its memberOf as read) and the users where they disagree on it being their
    manager (the records' manager against its directReports as read). A group or report on which both agree
    needs nothing for that object (member and manager values are links: a rename or a move carries them
    along). An object not read (new, gone, deleted in the domain) has no backlinks: every group and report
    the records give it differ. `backlinks`: {anchor as read: {"memberof": DNs, "directreports": DNs}},
    mapped to anchors by `key_of_dn` (`backlink_keys`) and `anchor_of_key` (normalized DN -> anchor). A
    manager without a record (gone from the tenant, out of scope) is no one's manager in a plan, which clears
    the value, unless it is `held` (quarantined, lower case), whose value stays."""

    def anchors(dns: list[str]) -> set[str]:
        out = set()
        for dn in dns:
            anchor = anchor_of_key.get(key_of_dn.get(dn))  # a DN without a key names no synced object
            if anchor is not None:
                out.add(anchor.lower())
        return out

    wanted: dict[str, dict[str, set[str]]] = {}
    if len(members):
        pairs = members.loc[isin_lowered(members["member_anchor"], changed), ["group_anchor", "member_anchor"]]
        for group, member in zip(lowered(pairs["group_anchor"]), lowered(pairs["member_anchor"]), strict=True):
            wanted.setdefault(member, {}).setdefault("memberof", set()).add(group)
    if len(users) and "manager_anchor" in users:
        reports = users.loc[isin_lowered(users["manager_anchor"], changed), ["anchor", "manager_anchor"]]
        managers = set(lowered(reports["manager_anchor"]))
        kept = set(lowered(users.loc[isin_lowered(users["anchor"], managers), "anchor"])) | (managers & held)
        for report, manager in zip(lowered(reports["anchor"]), lowered(reports["manager_anchor"]), strict=True):
            if manager in kept:
                wanted.setdefault(manager, {}).setdefault("directreports", set()).add(report)
    have = {a.lower(): {link: anchors(dns) for link, dns in links.items()} for a, links in backlinks.items()}
    out: set[str] = set()
    for anchor in changed:
        for link in ("memberof", "directreports"):
            out |= (wanted.get(anchor, {}).get(link, set()) ^ have.get(anchor, {}).get(link, set()))
    return out - changed


def wanted_names(records: list[dict], observed_anchors: set[str], suffix: str,
                 options: int = ACCOUNT_NAME_OPTIONS) -> tuple[set[str], set[str], set[str]]:
    """(sAMAccountNames, UPNs, cns) the plan of `records` looks at: each record's UPN and its local part in
    the domain's DNS name, the first `options` account names a new object may get and the UPNs they imply,
    each record's cn and suffixed cn. Names are lower case (cns as given)."""
    upn_column = ATTR_PREFIX + "userPrincipalName"
    sams: set[str] = set()
    upns: set[str] = set()
    cns: set[str] = set()
    for r in records:
        upn = r.get(upn_column)
        if isinstance(upn, str):
            upns.add(upn.lower())
            if upn.lower().endswith(suffix):
                sams.add(upn.lower()[: -len(suffix)])
        if r["anchor"] not in observed_anchors:
            names = account_name_options(r["anchor"], r["account_name"])
            for _ in range(options):
                name = next(names).lower()
                sams.add(name)
                upns.add(name + suffix)
        cns.update(common_name_options(r["anchor"], r["cn"]))
    return sams, upns, cns


def names_held_alone(objects: Iterable[ObservedObject], container_dn: str) -> tuple[dict[str, str], set[str]]:
    """The names the read objects hold that no other object can hold, so that looking them up would only find
    the objects again: each one's sAMAccountName (unique in the domain; {lower case: DN}, ASCII names only, as
    the DC's case rules and Python's agree on those) and the cn of each one directly in the container (unique
    there: a DN)."""
    accounts: dict[str, str] = {}
    cns: set[str] = set()
    for obj in objects:
        for name in obj.attributes.get("samaccountname", []):
            if name.isascii():
                accounts[name.lower()] = obj.dn
        if same_dn(parent_dn(obj.dn), container_dn):
            cns.update(obj.attributes.get("cn", []))
    return accounts, cns


def crowded_new_records(records: list[dict], observed_anchors: set[str], held_accounts: dict[str, str],
                        held_principals: dict[str, str], suffix: str) -> list[dict]:
    """The new records (not in the domain) whose first account name may not be theirs: held in the domain (as
    an account name, or as the local part of a UPN in the domain's DNS name), another new record's first
    name, or another record's UPN local part. Their further account names are looked up too; the others take
    their first (plan_changes; unlooked_names stops a plan that gives a name not looked up)."""
    wanted: dict[str, set[str]] = {}
    new = [r for r in records if r["anchor"] not in observed_anchors]
    for r in new:
        wanted.setdefault(str(r["account_name"]).lower(), set()).add(r["anchor"])
    upn_column = ATTR_PREFIX + "userPrincipalName"
    for r in records:
        upn = r.get(upn_column)
        if isinstance(upn, str) and upn.lower().endswith(suffix):
            wanted.setdefault(upn.lower()[: -len(suffix)], set()).add(r["anchor"])
    out = []
    for r in new:
        name = str(r["account_name"]).lower()
        if name in held_accounts or name + suffix in held_principals or wanted[name] - {r["anchor"]}:
            out.append(r)
    return out


def restrict(frame: pd.DataFrame, column: str, anchors: set[str]) -> pd.DataFrame:
    if not len(frame):
        return frame
    return frame[isin_lowered(frame[column], anchors)]


def only_from_tenant(reasons: dict[str, set[str]]) -> set[str]:
    """The anchors in the changed set only because the round brought them from the tenant."""
    if "tenant" not in reasons:
        return set()
    return reasons["tenant"] - set().union(*(v for k, v in reasons.items() if k != "tenant"))


def changed_by_members(reasons: dict[str, set[str]], by_members: dict[str, set[str]]) -> dict[str, set[str]]:
    """The groups (lower case) the tenant changed only through their members and in the changed set for no
    other reason, with the members (lower case) the round added or removed."""
    tenant_only = only_from_tenant(reasons) if by_members else set()
    return {g: m for g, m in by_members.items() if g in tenant_only}


def member_dependents(extra: set[str], index: pd.DataFrame, members: pd.DataFrame,
                      deleted: set[str] = frozenset()) -> set[str]:
    """The dependents that are groups (lower case). Nothing of theirs changed on either side but some members
    (a member added or removed, in the tenant or in the domain, changes the group itself): they are read
    without their member values, and their membership is diffed for the changed members alone
    (members_from_backlinks, restrict_members). Every other member is as the last plan left it. A group
    desiring a member deleted in the domain (`deleted`) is read whole: the domain dropped that member's value
    without changing the group, so only a whole read counts its members right."""
    if not extra:
        return set()
    groups = (index["kind"] == GROUP).to_numpy(dtype=bool) & isin_lowered(index["anchor"], extra)
    out = set(lowered(index.loc[groups, "anchor"]))
    if deleted and out and len(members):
        out -= set(lowered(members.loc[isin_lowered(members["member_anchor"], deleted), "group_anchor"]))
    return out


def members_from_backlinks(objects: dict[str, ObservedObject], backlinks: dict[str, dict[str, list[str]]],
                           groups: set[str], index: pd.DataFrame) -> None:
    """Give each group of `groups` (lower case), read without its member values, the members it has among
    the objects read (`objects`): those whose memberOf (`backlinks`: {anchor: {"memberof": DNs}}) names it,
    by their DNs as read, which is what its member values would name. Its whole member count is the index's
    (the module's doc)."""
    if not groups:
        return
    holders: dict[str, list[str]] = {}
    for anchor, obj in objects.items():
        for dn in (backlinks.get(anchor) or {}).get("memberof", []):
            key = dn_key(dn)
            if key is not None:
                holders.setdefault(key, []).append(obj.dn)
    rows = index[isin_lowered(index["anchor"], groups)]
    totals = dict(zip(lowered(rows["anchor"]), rows["members"].tolist(), strict=True))
    for anchor, obj in objects.items():
        if anchor.lower() in groups and obj.kind == GROUP:
            obj.members = sorted(holders.get(normalize_dn(obj.dn), []))
            total = totals.get(anchor.lower())
            obj.member_total = int(total) if total is not None and not pd.isna(total) else len(obj.members)


def restrict_members(members: pd.DataFrame, changed: set[str], by_members: set[str]) -> pd.DataFrame:
    """The desired memberships of the changed groups; of the groups in `by_members` (member_dependents), only
    those of changed members."""
    out = restrict(members, "group_anchor", changed)
    if not len(out) or not by_members:
        return out
    partial = isin_lowered(out["group_anchor"], by_members)
    return out[~partial | isin_lowered(out["member_anchor"], changed)]


@dataclass
class IncrementalRead:
    observed: ObservedDomain
    inputs: PlanInputs
    changed: set[str]
    reasons: dict[str, int]
    groups_by_members: int  # groups read without their member values (member_dependents)
    looked_up_account_names: set[str]
    unmarked: int
    outside: dict[str, str]  # anchor (lower case) -> objectGUID of objects of ours outside the search base


def observe_incremental(conn, *, base_dn: str, container_dn: str, search_base: str, anchor_attribute: str,
                        mapped_attributes: list[str], owner_attribute: str | None, owner_marker: str | None,
                        inputs: PlanInputs, change_inputs: ChangeInputs) -> IncrementalRead:
    """Read the changed set and what its plan looks at; the plan inputs restricted to it. Raises
    FullReconcileNeeded when the incremental plan cannot stand for a full one."""
    from domain_sync.dn import ancestors
    from domain_sync.domain import entry_exists

    delta = change_inputs.delta
    known_containers = change_inputs.meta.get("containers") or {}
    moved = sorted(dn for guid, dn in delta.containers.items()
                   if guid in known_containers and dn_key(dn) != known_containers[guid])
    if moved:
        raise FullReconcileNeeded(f"{len(moved)} containers holding synced objects were renamed or moved "
                                  f"({'; '.join(moved[:3])})")
    reasons = changed_set(change_inputs)
    changed = set().union(*reasons.values()) if reasons else set()
    own = changed_by_members(reasons, change_inputs.by_members)  # read after, without their member values
    their_members = set().union(*own.values()) - changed if own else set()
    index = change_inputs.index
    check_size(changed | their_members, index)
    missing = [d for d in ancestors(container_dn, base_dn) if not entry_exists(conn, d)]
    attributes = synced_attributes(anchor_attribute, [*mapped_attributes, "userPrincipalName"], owner_attribute,
                                   owner_marker, BACKLINKS)
    collector = SyncedCollector(anchor_attribute, owner_attribute, owner_marker)
    # Where each anchor was seen: the index, the domain's changes, objects of ours outside the search base. An
    # object of ours under the search base is in one of them (the index held every one the last plan saw, and
    # whatever changed since is in the domain's changes), so the changed set is read by objectGUID (indexed);
    # only sticky anchors (duplicates, unreadable DNs) are searched by anchor.
    sticky = set(change_inputs.meta.get("sticky") or [])
    there = entry_exists(conn, search_base)

    def read(anchors: set[str], what: list[str]) -> None:
        if not there:
            return
        observe_anchors(conn, search_base, collector, anchors & sticky, what, BACKLINKS)
        observe_guids(conn, search_base, collector, change_inputs.guids_of(anchors - sticky), what, BACKLINKS)

    read(changed - set(own), attributes)
    key_of_dn = backlink_keys(collector.extra)
    anchor_of_key = change_inputs.anchor_of_key(set(key_of_dn.values()))
    anchor_of_key.update({normalize_dn(o.dn): a for a, o in collector.objects.items()})
    # What depends on an object is what names it: a group's member values, a report's manager, where the
    # records and the domain disagree on them (dependents). A group whose members alone changed is read after,
    # without its member values: it names no one new.
    extra = dependents(changed - set(own), inputs.users, inputs.members, collector.extra, key_of_dn,
                       anchor_of_key, held={a.lower() for a in inputs.quarantined})
    extra -= changed | their_members
    by_members = member_dependents(extra | their_members | set(own), index, inputs.members,
                                   reasons.get("deleted_in_domain", set()))
    if their_members:
        reasons["members_changed_in_tenant"] = their_members
    if extra:
        reasons["dependents"] = extra
    later = extra | their_members
    read((later | set(own)) - by_members, attributes)
    read(by_members, [a for a in attributes if a.lower() != "member"])
    changed |= later
    collector.warn_duplicates()
    members_from_backlinks(collector.objects, collector.extra, by_members, index)

    users = restrict(inputs.users, "anchor", changed)
    groups = restrict(inputs.groups, "anchor", changed)
    members = restrict_members(inputs.members, changed, by_members)
    records = [r for frame in (users, groups) for r in record_rows(frame)]
    suffix = "@" + dns_domain_name(container_dn)
    # Account names of new objects in two steps: each one's first name, then the others of those it may not get.
    sams, upns, cns = wanted_names(records, set(collector.objects), suffix, options=1)
    for obj in collector.objects.values():  # the names the changed objects hold (freed when they leave)
        sams.update(n.lower() for n in obj.attributes.get("samaccountname", []))
        upns.update(n.lower() for n in obj.attributes.get("userprincipalname", []))
    own_accounts, own_cns = names_held_alone(collector.objects.values(), container_dn)
    new_cns = set() if missing else cns - own_cns
    account_names, principal_names, held_cns = observe_names(conn, base_dn, container_dn, sams - set(own_accounts),
                                                             upns, new_cns)
    account_names |= own_accounts
    # Names the DC's matching may not find that Windows AD takes for the ones looked up, as the last plan left
    # them and as the domain changed since.
    folded = change_inputs.delta.folded_names(change_inputs.meta.get("folded_names") or {})
    add_folded_names(account_names, principal_names, folded.values())
    known_rows = index[~isin_lowered(index["anchor"], changed)]
    # The container's local objects, as the last plan left them and as the domain changed since.
    local = change_inputs.delta.local_in_container(change_inputs.meta.get("local") or {})
    if cns and not missing:  # held under the plan's key where the DC's matching may not see it (even a cn the
        # object holds itself: another may hold it under the key), by a local or a settled object
        held_cns |= cns_held_by_key(cns, container_dn, local.values(),
                                    dict(zip(known_rows["key"].tolist(), known_rows["dn"].tolist(), strict=True)))
    crowded = crowded_new_records(records, set(collector.objects), account_names, principal_names, suffix)
    if crowded:
        more_sams, more_upns, _ = wanted_names(crowded, set(collector.objects), suffix)
        more_accounts, more_principals, _ = observe_names(conn, base_dn, container_dn, more_sams - sams,
                                                          more_upns - upns, set())
        account_names |= more_accounts
        principal_names |= more_principals
        sams |= more_sams
    local_names = {cn for cn, dn in held_cns.items() if dn_key(dn) not in collector.synced_dns}
    anchors = known_rows["anchor"].tolist()
    known = {a: KnownObject(k, dn, g if isinstance(g, str) else None) for a, k, dn, g in
             zip(anchors, known_rows["kind"].tolist(), known_rows["dn"].tolist(), known_rows["guid"].tolist(),
                 strict=True)}
    observed = ObservedDomain(container_dn, missing, collector.objects, account_names, principal_names, local_names,
                              collector.synced_dns, collector.duplicates, collector.unmarked, collector.unreadable,
                              unreadable_owned=collector.unreadable_owned, known=known,
                              known_keys=dict(zip(known_rows["key"].tolist(), anchors, strict=True)),
                              local_in_container=local, folded_names=folded)
    desired = {r["anchor"] for r in records} - inputs.quarantined
    # Objects of ours outside the search base: among the ones not found inside, those seen before (by objectGUID).
    lost = change_inputs.guids_of({a.lower() for a in observed.not_found(desired)})
    outside = {a: g for a, g in (change_inputs.meta.get("outside") or {}).items() if a not in changed}
    if lost:
        found_outside: dict[str, str] = {}
        observed.owned_outside = owned_outside(conn, base_dn, search_base, anchor_attribute, owner_attribute,
                                               owner_marker, guids=lost, guid_of=found_outside)
        outside |= {a.lower(): g for a, g in found_outside.items()}
    record_anchors = set(inputs.users["anchor"]) | set(inputs.groups["anchor"])
    restricted = PlanInputs(users=users, groups=groups, members=members, quarantined=inputs.quarantined,
                            out_of_scope=inputs.out_of_scope,
                            settled={a for a in record_anchors if a.lower() not in changed} - inputs.quarantined)
    log.info("incremental plan: %d changed objects (%s), %d read (%d groups without their member values), "
             "%d settled", len(changed), {k: len(v) for k, v in reasons.items()}, len(collector.objects),
             len(by_members), len(restricted.settled))
    return IncrementalRead(observed, restricted, changed, {k: len(v) for k, v in reasons.items()}, len(by_members),
                           {n.lower() for n in sams}, max(collector.unmarked, int(change_inputs.meta.get("unmarked") or 0)),
                           outside)


def check_size(changed: set[str], index: pd.DataFrame) -> None:
    """More changed objects than MAX_CHANGED_SHARE of the synced ones: a full read is cheaper."""
    if len(changed) > MIN_FULL_OBJECTS and len(changed) > MAX_CHANGED_SHARE * len(index):
        raise FullReconcileNeeded(f"{len(changed)} of the {len(index)} synced objects changed")


def unlooked_names(changes, looked_up: set[str]) -> list[str]:
    """Account names the plan's creates take that were not looked up (a name past the options looked up):
    the plan cannot tell that they are free, so a full reconcile must make it."""
    out = []
    for c in changes:
        if c.op == Op.CREATE:
            for name in c.values.get("sAMAccountName", []):
                if name.lower() not in looked_up:
                    out.append(name)
    return out


def sticky_anchors(collisions, observed: ObservedDomain) -> set[str]:
    """Anchors the next incremental plan reads whatever changed: those of this plan's collisions (a name they
    wanted may be freed), duplicate anchors, and objects of ours that could not be read or sit outside."""
    return {a.lower() for a in ({c.anchor for c in collisions} | set(observed.duplicate_anchors)
                                | set(observed.unreadable_owned) | set(observed.owned_outside))}


@dataclass
class PlanRound:
    """A plan and how it was made: `mode` (full or incremental), `reason` (why full), the counts of its reads,
    and the domain index it leaves (with the totals the guards take)."""

    change_set: ChangeSet
    collisions: list[Collision]
    observed: ObservedDomain
    mode: str
    reason: str | None
    index: DomainIndex
    changed: dict[str, int] = field(default_factory=dict)
    groups_by_members: int = 0
    # How the incremental plan found synced objects deleted in the domain: "tombstones", or "presence scan" where
    # the bind account sees none (tombstones_visible).
    deletions_seen_by: str | None = None

    def synced_counts(self) -> dict[str, int]:
        return self.index.synced_counts()

    def group_members(self) -> dict[str, int]:
        return self.index.group_members()

    def summary(self) -> dict:
        out = {"mode": self.mode, "objects_read": len(self.observed.objects)}
        if self.reason:
            out["full_because"] = self.reason
        if self.mode == INCREMENTAL:
            out["changed_set"] = self.changed.get("total", 0)
            out["changed_by_reason"] = {k: v for k, v in self.changed.items() if k != "total"}
            out["groups_read_without_members"] = self.groups_by_members
            out["deletions_seen_by"] = self.deletions_seen_by
        return out


@dataclass
class PlanSetting:
    """Where and how the plan reads the domain (from the settings and the endpoint)."""

    base_dn: str
    container_dn: str
    search_base: str
    anchor_attribute: str
    mapped_attributes: list[str]
    owner_attribute: str | None
    owner_marker: str | None
    set_initial_password: bool


def make_plan(connect_domain, where: PlanSetting, inputs: PlanInputs, *, full_because: str | None,
              index: DomainIndex | None, fingerprint: str, change_inputs: ChangeInputs | None) -> PlanRound:
    """Read the domain (the changed set, or all of it) and plan. `connect_domain()` opens a connection (closed
    here). `full_because`: the reason a full reconcile must run (full_reason), None to try the incremental plan."""
    from domain_sync.domain import disconnect, entry_exists

    conn = connect_domain()
    try:
        root = read_root(conn)
        reason = full_because or root_reason(index, root)
        outside: dict[str, str] = {}  # a full read: every object of ours outside the search base, for the index
        if reason is None:
            try:
                # Too many changed already on the tenant's side: no need to read the domain's changes.
                check_size(set().union(*changed_set(change_inputs).values()), index.frame)
                change_inputs.delta = changed_since(conn, where.base_dn, where.anchor_attribute, index.meta["usn"],
                                                    where.container_dn, where.owner_attribute, where.owner_marker)
                deletions_seen_by = "tombstones"
                if not tombstones_visible(conn, where.base_dn):
                    # A delegated account: an object of ours (or a local one in the container, or one holding a
                    # name under the plan's key anywhere) deleted by hand is found missing instead.
                    if not entry_exists(conn, where.search_base):
                        raise FullReconcileNeeded(f"the search base {where.search_base} is gone")
                    known = set(index.frame["guid"].dropna()) | set(change_inputs.meta.get("local") or {})
                    gone = missing_guids(conn, where.search_base, known, change_inputs.delta)
                    folded = {g.lower() for g in change_inputs.meta.get("folded_names") or {}} - known
                    gone |= folded - guids_present(conn, where.base_dn, folded)
                    change_inputs.delta.deleted_guids |= gone
                    deletions_seen_by = "presence scan"
                    log.info("the bind account sees no deleted objects (tombstones): deletions of synced objects "
                             "found by reading the objectGUIDs under %s: %d gone", where.search_base, len(gone))
                read = observe_incremental(
                    conn, base_dn=where.base_dn, container_dn=where.container_dn, search_base=where.search_base,
                    anchor_attribute=where.anchor_attribute, mapped_attributes=where.mapped_attributes,
                    owner_attribute=where.owner_attribute, owner_marker=where.owner_marker, inputs=inputs,
                    change_inputs=change_inputs)
                change_set, collisions = plan_changes(read.inputs, read.observed, where.anchor_attribute,
                                                      set_initial_password=where.set_initial_password,
                                                      owner=(where.owner_attribute, where.owner_marker))
                unlooked = unlooked_names(change_set.changes, read.looked_up_account_names)
                if unlooked:
                    raise FullReconcileNeeded(f"new account names past the ones looked up ({unlooked[:3]})")
                frame = updated_index(index.frame, read.changed, read.observed)
                meta = new_meta(root, fingerprint, sticky_anchors(collisions, read.observed), inputs.quarantined,
                                read.unmarked, container_guids(conn, holding_containers(frame, where.search_base)),
                                read.outside, read.observed)
                return PlanRound(change_set, collisions, read.observed, INCREMENTAL, None, DomainIndex(frame, meta),
                                 changed={**read.reasons, "total": len(read.changed)},
                                 groups_by_members=read.groups_by_members, deletions_seen_by=deletions_seen_by)
            except FullReconcileNeeded as exc:
                reason = str(exc)
                log.info("full reconcile: %s", reason)
        observed = observe_domain(
            conn, where.base_dn, where.container_dn, where.anchor_attribute, where.mapped_attributes,
            search_base=where.search_base, owner_attribute=where.owner_attribute, owner_marker=where.owner_marker,
            desired=(set(inputs.users["anchor"]) | set(inputs.groups["anchor"])) - inputs.quarantined,
            connect_more=connect_domain, outside_guids=outside)
        frame = index_frame(observed.objects.values())
        containers = container_guids(conn, holding_containers(frame, where.search_base))
    finally:
        disconnect(conn)
    change_set, collisions = plan_changes(inputs, observed, where.anchor_attribute,
                                          set_initial_password=where.set_initial_password,
                                          owner=(where.owner_attribute, where.owner_marker))
    meta = new_meta(root, fingerprint, sticky_anchors(collisions, observed), inputs.quarantined, observed.unmarked,
                    containers, {a.lower(): g for a, g in outside.items()}, observed)
    return PlanRound(change_set, collisions, observed, FULL, reason, DomainIndex(frame, meta))
