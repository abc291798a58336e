"""Diff desired directory records against the observed domain into a change set.

Reconcile, don't replay: the change set is whatever makes the domain match the records, whatever
state an earlier (maybe half-finished) run left. Only attributes that differ are written; renames
and moves are modify-DN operations (the object keeps its objectGUID, SID and memberships);
memberships change by single-value adds and deletes, never by rewriting a group's member list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from domain_sync.columns import record_rows
from domain_sync.dn import child_dn, dns_domain_name, guid_dn, normalize_dn, parent_dn, rdn_attribute, rdn_value
from domain_sync.domain import encode_anchor
from domain_sync.naming import assign_account_names, assign_common_names, name_key
from domain_sync.plan.observed import ObservedDomain, ObservedObject
from domain_sync.records import (
    ATTR_PREFIX,
    GROUP,
    USER,
    Change,
    ChangeSet,
    Op,
    is_missing,
)

# userAccountControl bits (MS-ADTS 2.2.16)
UF_ACCOUNTDISABLE = 0x0002
UF_NORMAL_ACCOUNT = 0x0200
UF_DONT_EXPIRE_PASSWD = 0x10000
OWNED_UAC_BITS = UF_ACCOUNTDISABLE | UF_DONT_EXPIRE_PASSWD
# groupType: global scope, plus the security bit (the only bit the sync owns on existing groups: an
# admin may change the scope, e.g. global to universal)
GROUP_TYPE_GLOBAL = 0x00000002
GROUP_TYPE_SECURITY = -0x80000000
_SECURITY_BIT = 0x80000000
MEMBER_BATCH = 1000


OUTSIDE_ADVICE = ("the object carries this sync's marker but is outside the search base (moved there by hand?): "
                  "it is not written and not created again; move it back under the search base, or widen "
                  "DOMAIN_SYNC_SEARCH_BASE to hold it")
UNREADABLE_ADVICE = ("the object carries this sync's marker but its DN cannot be read: it is held (not written, not "
                     "deleted) and not created again; rename it in the domain")
UPN_COLLISION_ADVICE = ("the tenant object is quarantined, the other object left untouched; change the UPN in the "
                        "tenant, or rename or remove the other object in the domain")


@dataclass
class Collision:
    anchor: str
    kind: str
    attribute: str
    value: str
    local_dn: str
    outcome: str = "the tenant object is quarantined, the local one left untouched"

    def reason(self) -> str:
        return f"{self.kind} {self.anchor}: {self.attribute} {self.value!r} is held by {self.local_dn}; {self.outcome}"


@dataclass
class PlanInputs:
    users: pd.DataFrame
    groups: pd.DataFrame
    members: pd.DataFrame
    quarantined: set[str] = field(default_factory=set)
    # Users the tenant has but the sync does not (out of scope): disabled if found, never deleted.
    out_of_scope: set[str] = field(default_factory=set)
    # Incremental plan: tenant objects left out of `users` and `groups` because nothing of theirs changed
    # (plan/incremental.py); each is in the domain as the last plan left it (`ObservedDomain.known`), so
    # a manager or a member value naming one is its DN there.
    settled: set[str] = field(default_factory=set)


def user_account_control(enabled: bool, never_expires: bool, observed: int | None = None) -> int:
    base = observed if observed is not None else UF_NORMAL_ACCOUNT
    value = base & ~OWNED_UAC_BITS
    if not enabled:
        value |= UF_ACCOUNTDISABLE
    if never_expires:
        value |= UF_DONT_EXPIRE_PASSWD
    return value


# pwdLastSet is a FILETIME: 100-nanosecond intervals since 1601-01-01 UTC (MS-ADTS 2.2.9); 0 means the
# password must be changed at the next logon.
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
MUST_CHANGE = "0"


def filetime(moment: datetime) -> int:
    return int((moment - _FILETIME_EPOCH).total_seconds() * 10_000_000)


def must_change_now(must_change: Any, password_changed_at: Any, observed_pwd_last_set: str | None) -> bool:
    """Whether the plan sets pwdLastSet = 0 on an existing user: the tenant asks for a change at next sign-in
    (passwordProfile.forceChangePasswordNextSignIn) and set that password (lastPasswordChangeDateTime) after
    the domain's password was last set. Once the person changes the password in the domain, pwdLastSet is
    later than the tenant's time and is never touched again; a domain already at 0 needs nothing. Without
    the tenant's time, an old request cannot be told from a new one: nothing is written."""
    if not must_change or is_missing(must_change) or observed_pwd_last_set in (None, "", MUST_CHANGE):
        return False
    if not isinstance(password_changed_at, str) or not password_changed_at:
        return False
    try:
        tenant_time = datetime.fromisoformat(password_changed_at.replace("Z", "+00:00"))
        domain_time = int(observed_pwd_last_set)
    except ValueError:
        return False
    if tenant_time.tzinfo is None:
        tenant_time = tenant_time.replace(tzinfo=UTC)
    # Graph gives whole seconds: a domain password set within the tenant's second is taken as older.
    return domain_time // 10_000_000 <= filetime(tenant_time) // 10_000_000


def group_type(security_enabled: bool, observed: int | None = None) -> int:
    """groupType for a new group (global scope), or the observed one with only the security bit set as wanted."""
    if observed is None:
        return GROUP_TYPE_GLOBAL | (GROUP_TYPE_SECURITY if security_enabled else 0)
    unsigned = (observed & 0xFFFFFFFF & ~_SECURITY_BIT) | (_SECURITY_BIT if security_enabled else 0)
    return unsigned - 0x100000000 if unsigned & _SECURITY_BIT else unsigned


def _desired_values(row: dict[str, Any]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for column, value in row.items():
        if not column.startswith(ATTR_PREFIX):
            continue
        name = column[len(ATTR_PREFIX):]
        if is_missing(value):
            values[name] = []
        elif isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
            values[name] = [str(v) for v in list(value)]
        else:
            values[name] = [str(value)]
    return values


def _same(name: str, desired: list[str], observed: list[str]) -> bool:
    if name.lower() == "manager":
        return [normalize_dn(v) for v in desired] == [normalize_dn(v) for v in observed]
    if len(desired) > 1 or len(observed) > 1:
        return sorted(desired) == sorted(observed)
    return desired == observed


def plan_changes(
    inputs: PlanInputs,
    observed: ObservedDomain,
    anchor_attribute: str,
    set_initial_password: bool = True,
    owner: tuple[str, str] | None = None,
) -> tuple[ChangeSet, list[Collision]]:
    """`owner`: (attribute, marker) written on every object the sync creates (observed.py)."""
    by_dn = observed.member_dns()
    observed.drop_unreadable(by_dn)
    container = observed.container_dn
    changes: list[Change] = []
    collisions: list[Collision] = []
    for dn in observed.missing_containers:
        classes = {"ou": "organizationalUnit", "cn": "container"}
        attribute = rdn_attribute(dn).lower()
        changes.append(Change(Op.CREATE_CONTAINER, "container", "", dn, values={
            "objectClass": [classes.get(attribute, "organizationalUnit")], attribute: [rdn_value(dn)]}))

    records = [r for frame in (inputs.users, inputs.groups) for r in record_rows(frame)]
    records = [r for r in records if r["anchor"] not in inputs.quarantined]
    # An anchor on two objects in the domain: neither is written, nothing is created for it.
    for r in records:
        if r["anchor"] in observed.duplicate_anchors:
            collisions.append(Collision(r["anchor"], r["kind"], anchor_attribute, r["anchor"],
                                        "; ".join(sorted(observed.duplicate_anchors[r["anchor"]])),
                                        outcome="the objects holding it are held (no write) until one is removed"))
    records = [r for r in records if r["anchor"] not in observed.duplicate_anchors]
    # An object of ours whose DN cannot be read, or outside the search base (moved there by hand): held, never
    # created a second time inside.
    outside = {r["anchor"] for r in records
               if r["anchor"] in observed.owned_outside and r["anchor"] not in observed.objects}
    for r in records:
        if r["anchor"] in observed.unreadable_owned:
            collisions.append(Collision(r["anchor"], r["kind"], "dn", observed.unreadable_owned[r["anchor"]],
                                        observed.unreadable_owned[r["anchor"]], outcome=UNREADABLE_ADVICE))
        elif r["anchor"] in outside:
            collisions.append(Collision(r["anchor"], r["kind"], "searchBase", observed.owned_outside[r["anchor"]],
                                        observed.owned_outside[r["anchor"]], outcome=OUTSIDE_ADVICE))
    outside |= {r["anchor"] for r in records if r["anchor"] in observed.unreadable_owned}
    records = [r for r in records if r["anchor"] not in outside]

    # Names held in the domain, without those of synced objects this plan deletes (a name freed by a
    # delete can be taken by a create or a rename in the same run: the delete then goes first).
    staying = ({r["anchor"] for r in records} | inputs.quarantined | inputs.out_of_scope
               | set(observed.duplicate_anchors) | outside)
    leaving = {normalize_dn(o.dn) for a, o in observed.objects.items() if a not in staying}
    account_names = {n: dn for n, dn in observed.account_names.items() if normalize_dn(dn) not in leaving}
    principal_names = {n: dn for n, dn in observed.principal_names.items() if normalize_dn(dn) not in leaving}
    suffix = "@" + dns_domain_name(container)

    # A UPN is unique among explicit UPNs and the implied ones (sAMAccountName@<the domain's DNS name>)
    # of every account (AD rejects it: 19 or 68). Held by another object: the tenant object is
    # quarantined and reported, the other left untouched.
    upn_column = ATTR_PREFIX + "userPrincipalName"
    # A synced object lets go of its UPN in this plan only when the tenant gives it another one; one that keeps
    # it (the same UPN in the tenant, e.g. a soft-deleted user's, or held: quarantined, out of scope) holds it
    # like a local object does.
    synced_anchor_of = observed.known_keys | {normalize_dn(o.dn): a for a, o in observed.objects.items()}
    desired_upns = {r["anchor"]: r[upn_column].lower() for r in records if isinstance(r.get(upn_column), str)}

    def upn_collisions(keeping: set[str]) -> list[Collision]:
        """The UPN collisions of the records, given the synced objects that keep their UPN this run."""
        def keeps_upn(holder_dn: str, upn: str) -> bool:
            holder = synced_anchor_of.get(normalize_dn(holder_dn))
            return holder is None or holder in keeping or desired_upns.get(holder, upn.lower()) == upn.lower()

        found = []
        for r in records:
            upn = r.get(upn_column)
            if not isinstance(upn, str):
                continue
            own = observed.objects.get(r["anchor"])
            own_key = normalize_dn(own.dn) if own is not None else None
            unreadable = observed.unreadable_principal_names.get(upn.lower()) or (
                observed.unreadable_account_names.get(upn.lower()[: -len(suffix)]) if upn.lower().endswith(suffix)
                else None)
            if unreadable:  # held (explicitly or implied) by an object whose DN cannot be read
                found.append(Collision(r["anchor"], r["kind"], "userPrincipalName", upn, unreadable,
                                       outcome=UPN_COLLISION_ADVICE))
                continue
            holder = principal_names.get(upn.lower())
            implied = account_names.get(upn.lower()[: -len(suffix)]) if upn.lower().endswith(suffix) else None
            if holder and normalize_dn(holder) != own_key and keeps_upn(holder, upn):
                found.append(Collision(r["anchor"], r["kind"], "userPrincipalName", upn, holder,
                                       outcome=UPN_COLLISION_ADVICE))
            elif implied and normalize_dn(implied) != own_key:
                found.append(Collision(r["anchor"], r["kind"], "userPrincipalName", upn, implied,
                                       outcome="the tenant object is quarantined: the UPN is implied by that "
                                               "object's sAMAccountName; " + UPN_COLLISION_ADVICE))
        return found

    # A synced object whose own new UPN collides keeps its current one, which may in turn be the one another
    # record wants: repeat until no more objects keep theirs (each round only adds).
    keeping: set[str] = set()
    while True:
        upn_found = upn_collisions(keeping)
        now_keeping = {c.anchor for c in upn_found}
        if now_keeping <= keeping:
            break
        keeping |= now_keeping
    collisions.extend(upn_found)
    colliding = {c.anchor for c in upn_found}
    records = [r for r in records if r["anchor"] not in colliding]

    # Objects the plan keeps but does not write (quarantined, held, out of scope) and objects it deletes.
    quarantined_by_name = {c.anchor for c in collisions if c.attribute == "userPrincipalName"}
    quarantined_by_name |= set(observed.duplicate_anchors) | outside
    desired_anchors = {r["anchor"] for r in records} | inputs.quarantined | quarantined_by_name
    held = set(inputs.quarantined) | quarantined_by_name
    deleted = {a for a, o in observed.objects.items()
               if a not in desired_anchors and not (o.kind == USER and a in inputs.out_of_scope)}

    existing_names = {}
    for r in records:
        obj = observed.objects.get(r["anchor"])
        if obj is not None and obj.first("sAMAccountName"):
            existing_names[r["anchor"]] = obj.first("sAMAccountName")
    held_upns, reserved = implied_principal_names(records, principal_names, suffix, upn_column)
    names = assign_account_names([(r["anchor"], r["account_name"]) for r in records], existing_names,
                                 set(account_names) | held_upns | set(observed.unreadable_account_names), reserved)
    for r in records:
        holder = account_names.get(r["account_name"].lower())
        if r["anchor"] not in existing_names and holder and not observed.is_synced_dn(holder):
            collisions.append(Collision(r["anchor"], r["kind"], "sAMAccountName", r["account_name"], holder,
                                        outcome=f"the tenant object gets {names[r['anchor']]!r} instead, the local one "
                                                f"left untouched"))
    in_container = {a: o.dn for a, o in observed.objects.items()
                    if normalize_dn(parent_dn(o.dn)) == normalize_dn(container)}
    current_cns = {a: rdn_value(dn) for a, dn in in_container.items()}
    # The cns of synced objects that stay where they are without being written (quarantined, held, out of
    # scope) are taken as much as local ones: a newcomer of the same name gets the suffix, never their cn.
    candidates = {r["anchor"] for r in records}
    staying_cns = {current_cns[a] for a in in_container if a not in candidates and a not in deleted}
    staying_cns |= {rdn_value(dn) for dns_held in observed.duplicate_anchors.values() for dn in dns_held
                    if normalize_dn(parent_dn(dn)) == normalize_dn(container)}
    cns = assign_common_names([(r["anchor"], r["cn"]) for r in records],
                              observed.local_names_in_container | {name_key(n) for n in staying_cns}, current_cns)
    dns = {r["anchor"]: child_dn("CN", cns[r["anchor"]], container) for r in records}
    # Where each synced object sits now (normalized DN) -> its anchor.
    anchor_of = observed.known_keys | {normalize_dn(o.dn): a for a, o in observed.objects.items()}
    # Unchanged tenant objects the incremental plan did not read that a manager or member value names, where
    # they are (PlanInputs.settled).
    named = {r.get("manager_anchor") for r in records} | set(inputs.members["member_anchor"]) if inputs.settled else set()
    settled = SettledDNs({a for a in named & inputs.settled if a in observed.known and a not in dns}, observed)
    # ... and where it will sit once this plan's renames and moves are done.
    after_renames = {key: dns[a] for key, a in anchor_of.items() if a in dns}

    # Each record is let go once its changes are made (taken from the end of the reversed list: plan order), so
    # the changes take the memory the records free: a first sync at large holds 100,000s of both.
    records.reverse()
    while records:
        r = records.pop()
        anchor, kind = r["anchor"], r["kind"]
        dn = dns[anchor]
        values = _desired_values(r)
        manager = r.get("manager_anchor")
        if kind == USER and isinstance(manager, str) and manager in dns:
            values["manager"] = [dns[manager]]
        elif kind == USER and isinstance(manager, str) and manager in settled:
            values["manager"] = [settled[manager]]
        elif kind == USER and isinstance(manager, str) and manager in held:
            # A manager held this run (quarantined, colliding) is still the manager: named where it sits when it is
            # in the domain (a report created or recreated this run gets it too), else the value stays as it is.
            where = observed.current_dn(manager)
            if where is not None:
                values["manager"] = [where]
        elif kind == USER:
            values["manager"] = []
        obj = observed.objects.get(anchor)
        if obj is None:
            changes.extend(_create(r, dn, cns[anchor], names[anchor], values, anchor_attribute, set_initial_password,
                                   owner))
        else:
            changes.extend(_update(r, dn, obj, values, after_renames, set_initial_password))

    freed_names = {n for n, dn in observed.account_names.items() if normalize_dn(dn) in leaving}
    freed_names |= {n for n, dn in observed.principal_names.items() if normalize_dn(dn) in leaving}
    changes.extend(_membership_changes(inputs.members, dns, observed, anchor_of, held, deleted, settled, by_dn))

    for anchor, obj in sorted(observed.objects.items()):
        if anchor in desired_anchors:
            continue
        if obj.kind == USER and anchor in inputs.out_of_scope:
            uac = int(obj.first("userAccountControl") or UF_NORMAL_ACCOUNT)
            if not uac & UF_ACCOUNTDISABLE:
                changes.append(Change(Op.DISABLE, obj.kind, anchor, obj.dn,
                                      values={"userAccountControl": [str(uac | UF_ACCOUNTDISABLE)]},
                                      reason="out of scope", guid=obj.guid))
            continue
        changes.append(Change(Op.DELETE, obj.kind, anchor, obj.dn, reason="not in the tenant", guid=obj.guid))

    # The names the plan's writes take (name -> writes taking it), for deletes and for modifies moving an
    # object's name (_release_names_first); a plan with neither (a first sync) does not count them.
    deletes = any(c.op == Op.DELETE for c in changes)
    names_move = any(c.op == Op.MODIFY and c.anchor in observed.objects
                     and any(k.lower() in NAME_ATTRIBUTES for k in c.values) for c in changes)
    taken = Counter(name for c in changes for name in _names_taken_by(c, suffix)) if deletes or names_move else Counter()
    # A delete that frees a DN another object is renamed or created into goes first (an object still
    # holding the name would make that write fail with entryAlreadyExists); the others go last.
    wanted: set[str] = set()
    if deletes:
        wanted = {normalize_dn(c.dn) for c in changes if c.op == Op.CREATE}
        wanted |= {normalize_dn(c.new_dn) for c in changes if c.op == Op.RENAME and c.new_dn}
        # ... and so does a delete whose sAMAccountName or UPN (or the UPN its sAMAccountName implies) a create
        # or a modify takes.
        wanted |= {normalize_dn(o.dn) for o in observed.objects.values()
                   if normalize_dn(o.dn) in leaving and _names_held_by(o, suffix) & freed_names & taken.keys()}
        for c in changes:
            if c.op == Op.DELETE and normalize_dn(c.dn) in wanted:
                c.reason = "not in the tenant; frees its name for another object"

    changes, early = _release_names_first(changes, observed, suffix, taken)

    def order(c: Change) -> tuple[float, int]:
        index: float = Op(c.op).order
        if c.op == Op.DELETE and normalize_dn(c.dn) in wanted:
            index = Op.RENAME.order - 0.5
        elif id(c) in early:
            index = Op.RENAME.order - 0.25
        return index, 0 if c.kind == USER else 1

    changes.sort(key=order)
    changes = _break_rename_cycles(_order_rename_chains(changes))
    counts = count_changes(changes)
    return ChangeSet(changes=changes, counts=counts), collisions


NAME_ATTRIBUTES = ("samaccountname", "userprincipalname")


def _account_names(samaccountnames: list[str], upns: list[str], suffix: str) -> set[str]:
    """Lower-cased names an account holds in AD's sense: its sAMAccountName and the UPN it implies
    (sAMAccountName@<the domain's DNS name>), its UPN and, in that DNS name, the UPN's local part."""
    sams = {n.lower() for n in samaccountnames}
    principals = {n.lower() for n in upns}
    return sams | {n + suffix for n in sams} | principals | {n[: -len(suffix)] for n in principals if n.endswith(suffix)}


def _names_taken_by(c: Change, suffix: str) -> set[str]:
    """The names (in AD's sense, `_account_names`) a create or a modify gives its object."""
    if c.op not in (Op.CREATE, Op.MODIFY):
        return set()
    values = {k.lower(): v for k, v in c.values.items()}
    return _account_names(values.get("samaccountname", []), values.get("userprincipalname", []), suffix)


def _names_held_by(obj: ObservedObject, suffix: str) -> set[str]:
    """The names (in AD's sense) an object holds in the domain now."""
    return _account_names(obj.attributes.get("samaccountname", []), obj.attributes.get("userprincipalname", []),
                          suffix)


def _release_names_first(changes: list[Change], observed: ObservedDomain, suffix: str,
                         taken: Counter) -> tuple[list[Change], set[int]]:
    """A modify that moves an object's sAMAccountName or UPN away from a name another write of the plan
    takes (a create, or another object's modify: `taken` counts them) is split: its name attributes go in
    a step before the creates (ids returned), the rest of the modify stays in its place. Otherwise the two
    writes race in one phase and the taker may be refused (19 or 68) until the next run."""
    early: set[int] = set()
    out: list[Change] = []
    for c in changes:
        obj = observed.objects.get(c.anchor) if c.op == Op.MODIFY else None
        moved = {k: v for k, v in c.values.items() if k.lower() in NAME_ATTRIBUTES} if obj is not None else {}
        if moved:
            own = _names_taken_by(c, suffix)
            held = _names_held_by(obj, suffix)
            if any(taken[name] - (name in own) > 0 for name in held - own):
                first = Change(Op.MODIFY, c.kind, c.anchor, c.dn, values=moved, guid=c.guid,
                               reason="frees its name for another object")
                early.add(id(first))
                out.append(first)
                c.values = {k: v for k, v in c.values.items() if k not in moved}
                if not c.values:
                    continue
        out.append(c)
    return out, early


def _order_rename_chains(changes: list[Change]) -> list[Change]:
    """A rename into a DN another rename frees goes after that one (Y: Beta -> Gamma before X: Alpha ->
    Beta); renames in a cycle keep their order for _break_rename_cycles."""
    renames = [c for c in changes if c.op == Op.RENAME and c.new_dn]
    if len(renames) < 2:
        return changes
    by_source = {normalize_dn(c.dn): c for c in renames}
    ordered: list[Change] = []
    state: dict[int, int] = {}  # 1: being placed, 2: placed

    def blocker_of(c: Change) -> Change | None:
        blocker = by_source.get(normalize_dn(c.new_dn))
        return blocker if blocker is not c else None

    def in_cycle(c: Change) -> bool:
        seen, step = {id(c)}, blocker_of(c)
        while step is not None and id(step) not in seen:
            seen.add(id(step))
            step = blocker_of(step)
        return step is c

    def place(c: Change) -> None:
        if state.get(id(c)):
            return  # placed already, or being placed
        state[id(c)] = 1
        blocker = blocker_of(c)
        if blocker is not None and not in_cycle(c):
            place(blocker)
        state[id(c)] = 2
        ordered.append(c)

    for c in renames:
        place(c)
    placed = iter(ordered)
    return [next(placed) if c.op == Op.RENAME and c.new_dn else c for c in changes]


def _break_rename_cycles(changes: list[Change]) -> list[Change]:
    """Objects that swap names (A -> B while B -> A, or longer cycles) cannot rename in any order: the
    first of each cycle moves to a temporary name, the others follow, then it takes its new name."""
    by_source = {normalize_dn(c.dn): c for c in changes if c.op == Op.RENAME}
    out: list[Change] = []
    handled: set[int] = set()
    for c in changes:
        if id(c) in handled:
            continue
        cycle = [c]
        target = normalize_dn(c.new_dn) if c.op == Op.RENAME and c.new_dn else None
        while target in by_source and by_source[target] not in cycle:
            cycle.append(by_source[target])
            target = normalize_dn(cycle[-1].new_dn)
        if len(cycle) < 2 or target != normalize_dn(c.dn):
            out.append(c)
            continue
        temporary = child_dn("CN", f"renaming {c.anchor}", parent_dn(c.dn))
        out.append(Change(Op.RENAME, c.kind, c.anchor, c.dn, new_dn=temporary, reason="name swap, step 1",
                          guid=c.guid, final_dn=c.new_dn))
        out.extend(reversed(cycle[1:]))
        out.append(Change(Op.RENAME, c.kind, c.anchor, temporary, new_dn=c.new_dn, reason="name swap, step 2",
                          guid=c.guid))
        handled.update(id(x) for x in cycle)
    return out


def _create(r, dn, cn, sam, values, anchor_attribute, set_initial_password, owner=None) -> list[Change]:
    kind, anchor = r["kind"], r["anchor"]
    attributes = {k: v for k, v in values.items() if v and k != "manager"}
    attributes["cn"] = [cn]
    attributes["sAMAccountName"] = [sam]
    if kind == USER:
        attributes["objectClass"] = ["top", "person", "organizationalPerson", "user"]
        # Windows AD refuses an enabled account without a password: without an initial password
        # (initial_password=none) the account is created disabled.
        uac = user_account_control(bool(r["enabled"]) and set_initial_password, bool(r["password_never_expires"]))
        attributes["userAccountControl"] = [str(uac)]
        if set_initial_password:  # the initial password must be changed at the first logon
            attributes["pwdLastSet"] = [MUST_CHANGE]
    else:
        attributes["objectClass"] = ["top", "group"]
        attributes["groupType"] = [str(group_type(bool(r["security_enabled"])))]
    anchor_value = encode_anchor(anchor_attribute, anchor)
    attributes[anchor_attribute] = [anchor_value.hex() if isinstance(anchor_value, bytes) else anchor_value]
    if owner:
        attributes[owner[0]] = [owner[1]]
    create = Change(Op.CREATE, kind, anchor, dn, values=attributes)
    if kind == USER and set_initial_password:
        create.reason = "initial password"
    out = [create]
    if values.get("manager"):
        out.append(Change(Op.MODIFY, kind, anchor, dn, values={"manager": values["manager"]}, reason="manager"))
    return out


def _update(r, dn, obj: ObservedObject, values, after_renames: dict[str, str],
            set_initial_password: bool = True) -> list[Change]:
    kind, anchor = r["kind"], r["anchor"]
    out: list[Change] = []
    # A case-only change of the name is a rename too (the DNs compare equal without case).
    if normalize_dn(dn) != normalize_dn(obj.dn) or rdn_value(dn) != rdn_value(obj.dn):
        out.append(Change(Op.RENAME, kind, anchor, obj.dn, new_dn=dn, guid=obj.guid))
    diff = {}
    for name, desired in values.items():
        current = obj.attributes.get(name.lower(), [])
        if name.lower() == "manager":  # a manager renamed or moved in this run is still the same manager
            current = [after_renames.get(normalize_dn(v), v) for v in current]
        if not _same(name, desired, current):
            diff[name] = desired
    disable = False
    if kind == USER:
        observed_uac = int(obj.first("userAccountControl") or UF_NORMAL_ACCOUNT)
        enabled = bool(r["enabled"])
        if (enabled and not set_initial_password and observed_uac & UF_ACCOUNTDISABLE
                and obj.first("pwdLastSet") in (None, MUST_CHANGE)):
            # initial_password=none: an account the domain holds without a password set stays disabled (Windows
            # AD refuses to enable it) until an admin sets one (or enables it).
            enabled = False
        desired_uac = user_account_control(enabled, bool(r["password_never_expires"]), observed_uac)
        if desired_uac != observed_uac:
            disable = bool(desired_uac & UF_ACCOUNTDISABLE) and not observed_uac & UF_ACCOUNTDISABLE
            if disable:
                out.append(Change(Op.DISABLE, kind, anchor, dn, values={"userAccountControl": [str(desired_uac)]},
                                  reason="disabled in the tenant", guid=obj.guid))
            else:
                diff["userAccountControl"] = [str(desired_uac)]
        if must_change_now(r.get("must_change_password"), r.get("password_changed_at"), obj.first("pwdLastSet")):
            diff["pwdLastSet"] = [MUST_CHANGE]
    else:
        observed_type = obj.first("groupType")
        desired_type = group_type(bool(r["security_enabled"]), int(observed_type) if observed_type else None)
        if str(desired_type) != (observed_type or ""):
            diff["groupType"] = [str(desired_type)]
    if diff:
        out.append(Change(Op.MODIFY, kind, anchor, dn, values=diff, guid=obj.guid))
    return out


class SettledDNs(Mapping):
    """{anchor: DN} of the settled objects a plan names (PlanInputs.settled), each DN made when first asked:
    a member value names a settled object by its objectGUID, so most are never asked (a group may name every
    user)."""

    def __init__(self, anchors: set[str], observed: ObservedDomain):
        self._anchors, self._observed, self._dns = anchors, observed, {}

    def __getitem__(self, anchor: str) -> str:
        if anchor not in self._anchors:
            raise KeyError(anchor)
        if anchor not in self._dns:
            self._dns[anchor] = self._observed.known_dn(anchor)
        return self._dns[anchor]

    def __contains__(self, anchor: object) -> bool:
        return anchor in self._anchors

    def __iter__(self):
        return iter(self._anchors)

    def __len__(self) -> int:
        return len(self._anchors)


def _membership_changes(members: pd.DataFrame, dns: dict[str, str], observed: ObservedDomain,
                        anchor_of: dict[str, str], held: set[str] = frozenset(),
                        deleted: set[str] = frozenset(), settled: Mapping[str, str] | None = None,
                        by_dn: dict[str, str] | None = None) -> list[Change]:
    """Compare memberships by anchor, so that a member renamed in the same run is no change.
    Members in `held` (quarantined this run) keep the memberships they have: a bad record must not
    cost a person their group access. Members in `deleted` are not removed: the domain drops the
    links of a deleted object itself, and their DN may be another object's by then (a rename into a
    name the delete freed). Every member the domain holds is named by its objectGUID (`<GUID=...>`,
    which AD and Samba resolve in member values), only a member this plan creates by its new DN.
    `settled`: unchanged objects an incremental plan did not read (anchor -> DN), members like planned ones.
    `by_dn`: {DN as read: anchor} of synced objects (ObservedDomain.member_dns), member values found without
    parsing them."""
    settled = settled or {}
    by_dn = by_dn or {}

    def member_anchor(value: str) -> str | None:
        anchor = by_dn.get(value)
        return anchor if anchor is not None else anchor_of.get(normalize_dn(value))

    def value(anchor: str) -> str:
        obj = observed.objects.get(anchor)
        if obj is not None and obj.guid:
            return guid_dn(obj.guid)
        known = observed.known.get(anchor)
        if obj is None and known is not None and known.guid:
            return guid_dn(known.guid)
        if anchor in dns:
            return dns[anchor]
        return settled[anchor] if anchor in settled else obj.dn if obj is not None else known.dn

    desired: dict[str, set[str]] = {}
    for group, member in zip(members["group_anchor"].tolist(), members["member_anchor"].tolist(), strict=True):
        if group in dns and (member in dns or member in settled):
            desired.setdefault(group, set()).add(member)
    out: list[Change] = []
    for group, dn in dns.items():
        obj = observed.objects.get(group)
        if obj is not None and obj.kind != GROUP:
            continue
        # Members that are local objects were put there by an admin: never removed by the sync.
        have = {a for a in map(member_anchor, obj.members if obj else []) if a is not None}
        want = desired.get(group, set())
        add = sorted(value(a) for a in want - have)
        remove = sorted(value(a) for a in have - want - held - deleted)
        for op, items in ((Op.ADD_MEMBERS, add), (Op.REMOVE_MEMBERS, remove)):
            for i in range(0, len(items), MEMBER_BATCH):
                out.append(Change(op, GROUP, group, dn, members=items[i:i + MEMBER_BATCH],
                                  guid=obj.guid if obj is not None else None))
    return out


def implied_principal_names(records: list[dict], principal_names: dict[str, str], suffix: str,
                            upn_column: str) -> tuple[set[str], dict[str, str]]:
    """AD (and Samba) treat sAMAccountName@<domain DNS name> as every account's implied UPN: a new
    account name may not equal the local part of another object's UPN in that DNS domain (the domain
    answers constraintViolation, code 19). `principal_names`: the UPNs held in the domain (lower case).
    Returns (local parts of UPNs held in the domain, {local part of a record's UPN: that record's anchor},
    the one account that may be named so)."""
    held = {upn[: -len(suffix)] for upn in principal_names if upn.endswith(suffix)}
    reserved = {}
    for r in records:
        upn = r.get(upn_column)
        if isinstance(upn, str) and upn.lower().endswith(suffix):
            reserved[upn[: -len(suffix)].lower()] = r["anchor"]
    return held, reserved


def count_changes(changes: list[Change]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in changes:
        key = f"{c.kind}.{c.op}"
        counts[key] = counts.get(key, 0) + (len(c.members) if c.members else 1)
    return dict(sorted(counts.items()))
