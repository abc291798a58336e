"""The incremental plan's pure parts: the changed set and its dependents, the names it looks up, the fallbacks,
the domain index through commit. (That both modes give the same plan against a real domain:
tests/integration/test_convergence.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_sync.dn import child_dn, normalize_dn
from domain_sync.naming import assign_account_names, assign_common_names, name_key
from domain_sync.plan.changeset import PlanInputs, plan_changes
from domain_sync.plan.incremental import (
    ACCOUNT_NAME_OPTIONS,
    INDEX_FORMAT,
    ChangeInputs,
    DomainIndex,
    backlink_keys,
    crowded_new_records,
    full_reason,
    holding_containers,
    index_frame,
    member_dependents,
    members_from_backlinks,
    names_held_alone,
    new_meta,
    restrict_members,
    root_reason,
    unlooked_names,
    updated_index,
    wanted_names,
)
from domain_sync.plan.incremental import (
    changed_set as changed_set_of,
)
from domain_sync.plan.incremental import (
    dependents as dependents_of,
)
from domain_sync.plan.observed import (
    DomainDelta,
    KnownObject,
    ObservedDomain,
    ObservedObject,
    add_folded_names,
    cns_held_by_key,
    folded_entry,
    folded_name_keys,
)
from domain_sync.records import RECORD_BASE_COLUMNS, RECORD_MEMBER_COLUMNS, Change, Op, attr_column
from domain_sync.runs import RunFolder, write_json_atomic
from domain_sync.state import StateStore

C = "OU=Sync,DC=corp,DC=example,DC=test"
SUFFIX = "@corp.example.test"


def aid(n: int) -> str:
    return str(uuid.UUID(int=n))


def index_of(*rows) -> pd.DataFrame:
    """Index rows (anchor, kind, cn, guid, members)."""
    return pd.DataFrame([(a, k, f"CN={cn},{C}", f"cn={cn.lower()},ou=sync,dc=corp,dc=example,dc=test", g, m)
                         for a, k, cn, g, m in rows], columns=["anchor", "kind", "dn", "key", "guid", "members"])


def inputs(**values) -> ChangeInputs:
    base = {"tenant": set(), "scope_changed": set(), "failing": set(), "records": set(), "quarantined": set(),
            "out_of_scope": set(), "index": index_of(), "meta": {}}
    return ChangeInputs(**(base | values))


def test_the_changed_set_names_each_reason():
    index = index_of((aid(1), "user", "a", aid(101), 0), (aid(2), "user", "b", aid(102), 0),
                     (aid(3), "user", "c", aid(103), 0), (aid(4), "group", "g", aid(104), 2),
                     (aid(9), "user", "oos", aid(109), 0))
    delta = DomainDelta(anchors={aid(50)}, guids={aid(102)}, deleted_guids={aid(103), aid(777)})
    found = changed_set_of(inputs(
        tenant={aid(1)}, scope_changed={aid(5)}, failing={aid(6)}, records={aid(n) for n in (1, 2, 3, 4, 7, 8)},
        quarantined={aid(8)}, out_of_scope={aid(9)}, index=index,
        meta={"sticky": [aid(11)], "quarantined": [aid(8), aid(12)]}, delta=delta))
    assert found == {
        "tenant": {aid(1)}, "scope": {aid(5)}, "failing": {aid(6)}, "released": {aid(12)},
        "not_indexed": {aid(7)},  # 8 is quarantined: not created, not read
        "sticky": {aid(11)}, "domain": {aid(50), aid(2)},  # by anchor, and by objectGUID through the index
        "deleted_in_domain": {aid(3)},  # a tombstone's objectGUID; 777 is nobody's
    }
    # Indexed objects the tenant no longer has are read (a delete); the out-of-scope one is not.
    found = changed_set_of(inputs(records={aid(1)}, index=index, out_of_scope={aid(9)}))
    assert found == {"not_in_tenant": {aid(2), aid(3), aid(4)}}


def test_a_synced_cn_a_local_object_now_holds_under_the_plans_key_puts_its_holder_in_the_changed_set():
    """Samba lets a local "Müller Zoë" be made beside a synced "Muller Zoe" (Windows AD would not): the full plan
    gives the synced one its suffix, so the incremental one must read it. Only local objects added or renamed
    directly in the container count; an object elsewhere or a removed one does not."""
    names = {1: "Muller Zoe", 2: "Ana", 3: "ｱｷﾗ", 4: "Bob, Jr.", 5: "Other"}
    index = pd.DataFrame([(aid(n), "user", child_dn("CN", cn, C), normalize_dn(child_dn("CN", cn, C)), aid(100 + n), 0)
                          for n, cn in names.items()]
                         + [(aid(6), "user", f"CN=Ana,OU=Elsewhere,{C}", normalize_dn(f"CN=Ana,OU=Elsewhere,{C}"),
                             aid(106), 0)],
                         columns=["anchor", "kind", "dn", "key", "guid", "members"])
    delta = DomainDelta(children={aid(201): f"CN=Müller Zoë,{C}", aid(202): f"CN=ANA,{C}", aid(203): None,
                                  aid(204): f"CN=あきら,{C}", aid(205): f"CN=BOB\\, JR.,{C}",
                                  aid(206): f"OU=Other,{C}"})
    found = changed_set_of(inputs(records={aid(n) for n in range(1, 7)}, index=index, delta=delta))
    assert found == {"cn_taken_by_local": {aid(1), aid(2), aid(3), aid(4)}}
    assert changed_set_of(inputs(records={aid(n) for n in range(1, 7)}, index=index)) == {}


def test_the_objectguids_and_dns_of_anchors_are_the_index_rows_of_those_anchors_alone():
    index = index_of((aid(1).upper(), "user", "a", aid(101), 0), (aid(2), "user", "b", None, 0),
                     (aid(3), "group", "g", aid(103).upper(), 4))
    c = inputs(index=index, meta={"outside": {aid(2): aid(202)}},
               delta=DomainDelta(guids_of={aid(3): {aid(303)}}))
    assert c.guids_of({aid(1)}) == {aid(101)}  # the anchor without case
    assert c.guids_of({aid(2), aid(3)}) == {aid(202), aid(103).upper(), aid(303)}  # outside; the domain's changes
    assert c.guids_of({aid(4)}) == set() and c.guids_of(set()) == set()
    assert c.anchors_of_guids({aid(103), aid(101).upper(), aid(999)}) == {aid(1), aid(3)}
    assert c.indexed == {aid(1), aid(2), aid(3)}
    key = "cn=g,ou=sync,dc=corp,dc=example,dc=test"
    assert c.anchor_of_key({key, "cn=nobody,ou=sync"}) == {key: aid(3)}


def test_anchors_are_compared_without_case():
    upper = aid(1).upper()
    found = changed_set_of(inputs(tenant={upper}, records={aid(1)}, index=index_of((upper, "user", "a", None, 0))))
    assert found == {"tenant": {aid(1)}}


def test_dependents_are_the_groups_and_reports_on_which_records_and_domain_disagree():
    users = pd.DataFrame({"anchor": [aid(1), aid(2), aid(3), aid(5), aid(9)],
                          "manager_anchor": [None, aid(1), aid(9), aid(1), None]})
    members = pd.DataFrame({"group_anchor": [aid(20), aid(21), aid(22), aid(30)],
                            "member_anchor": [aid(1), aid(3), aid(2), aid(8)]})
    keys = {"cn=g30,ou=sync": aid(30), "cn=g20,ou=sync": aid(20), "cn=u4,ou=sync": aid(4), "cn=u5,ou=sync": aid(5)}
    # 1 is read: in the domain it is in 30 (the records: in 20), and 5 reports to it there (the records: 2 and 5);
    # 9 is not read (new, or deleted in the domain): 3 reports to it in the records.
    backlinks = {aid(1): {"memberof": ["CN=G30,OU=Sync", "CN=local group,OU=Sync", "not a dn", "CN=a\\,b\ud800,OU=Sync"],
                          "directreports": ["CN=u5,OU=Sync"]}}
    found = dependents_of({aid(1), aid(9)}, users, members, backlinks, backlink_keys(backlinks), keys)
    assert found == {aid(20), aid(30), aid(2), aid(3)}  # 5 agrees on both sides; the local group is no one's
    # Records and domain agreeing on every link (an object changed in place or renamed): no dependents.
    agreeing = {aid(1): {"memberof": ["cn=g20,ou=sync"], "directreports": []}}
    assert dependents_of({aid(1)}, users[users["anchor"] != aid(2)].assign(manager_anchor=None), members,
                         agreeing, backlink_keys(agreeing), keys) == set()
    # 8 is read and in no group in the domain (the records: in 30); a changed group is never its own dependent.
    assert dependents_of({aid(8), aid(30)}, users, members, {aid(8): {"memberof": []}}, {}, keys) == set()
    assert dependents_of({aid(8)}, users, members, {aid(8): {"memberof": []}}, {}, keys) == {aid(30)}
    assert dependents_of({aid(6)}, users, members, {}, {}, keys) == set()
    # A manager gone from the tenant (no record) is no one's manager: its reports in the domain are dependents
    # (their values are cleared), and reports the records still give it are not, unless it is held (quarantined).
    gone = {aid(9): {"directreports": ["CN=u5,OU=Sync"]}}
    without_9 = users[users["anchor"] != aid(9)]
    assert dependents_of({aid(9)}, without_9, members, gone, backlink_keys(gone), keys) == {aid(5)}
    assert dependents_of({aid(9)}, without_9, members, gone, backlink_keys(gone), keys, held={aid(9)}) == {aid(3), aid(5)}
    # Each DN is normalized once; one that does not parse or encode has no key.
    assert backlink_keys(backlinks) == {"CN=G30,OU=Sync": "cn=g30,ou=sync", "CN=local group,OU=Sync":
                                        "cn=local group,ou=sync", "CN=u5,OU=Sync": "cn=u5,ou=sync"}


def test_full_reconcile_reasons_in_order():
    index = DomainIndex(index_of(), {"fingerprint": "f", "usn": 10, "server": "dc1"})
    links = {"users": {"link": "x"}, "groups": {"link": "y"}}
    common = {"mode_setting": "incremental", "full_resync": False, "chosen": False, "links": links,
              "index": index, "fingerprint": "f"}
    assert full_reason(**common) is None
    assert full_reason(**common | {"mode_setting": "full"}) == "DOMAIN_SYNC_PLAN_MODE=full"
    assert full_reason(**common | {"full_resync": True}) == "a full resync"
    assert "on-demand" in full_reason(**common | {"chosen": True})
    assert full_reason(**common | {"links": {"users": {"link": "x", "full_read": True}}}) == \
        "a full read of users in the round"
    assert full_reason(**common | {"index": None}) == "no committed domain index"
    assert "settings" in full_reason(**common | {"fingerprint": "g"})
    assert root_reason(index, {"usn": 12, "server": "dc1"}) is None
    assert "another domain controller" in root_reason(index, {"usn": 12, "server": "dc2"})
    assert "went back" in root_reason(index, {"usn": 9, "server": "dc1"})
    assert root_reason(index, {"usn": None, "server": "dc1"}) == "no highestCommittedUSN"


def test_the_index_goes_through_commit_and_is_updated_for_the_changed_set(tmp_path):
    objects = [ObservedObject(aid(1), "user", f"CN=a,{C}", {}, guid=aid(101)),
               ObservedObject(aid(2), "group", f"CN=g,{C}", {}, members=[f"CN=a,{C}"], guid=aid(102))]
    run = RunFolder(tmp_path / "runs", "r1")
    write_json_atomic(run.delta_link("users"), {"link": "l"})
    for frame in ("users", "groups", "members"):
        pd.DataFrame({"id": []}).to_parquet(run.snapshot(frame))
    local = {aid(201): f"CN=Local,{C}"}
    folded = {aid(202): [f"CN=Jürgen,{C}", ["jurgen"], []]}
    seen = ObservedDomain(C, [], {}, {}, {}, set(), local_in_container=local, folded_names=folded)
    DomainIndex(index_frame(objects), new_meta({"usn": 5, "server": "dc"}, "f", {aid(3)}, {aid(4)}, 2,
                                               observed=seen)).write(run)
    state = StateStore(tmp_path / "state")
    state.commit(run.snapshot_dir, {"users": "l"}, now=datetime(2026, 1, 1, tzinfo=UTC),
                 extra_files=(run.domain_index, run.domain_index_meta))
    index = DomainIndex.committed(state)
    assert index.meta == {"format": INDEX_FORMAT, "usn": 5, "server": "dc", "fingerprint": "f", "sticky": [aid(3)],
                          "quarantined": [aid(4)], "unmarked": 2, "containers": {}, "outside": {}, "local": local,
                          "folded_names": folded}
    assert index.synced_counts() == {"user": 1, "group": 1} and index.group_members() == {aid(2): 1}
    # The changed set as read now: 1 moved, 2 gone, 5 new; the rest stays as committed.
    observed = ObservedDomain(C, [], {aid(1): ObservedObject(aid(1), "user", f"CN=b,{C}", {}, guid=aid(101)),
                                      aid(5): ObservedObject(aid(5), "user", f"CN=e,{C}", {}, guid=aid(105))},
                              {}, {}, set())
    frame = updated_index(index.frame, {aid(1), aid(2), aid(5)}, observed)
    assert sorted(zip(frame["anchor"], frame["dn"], strict=True)) == [(aid(1), f"CN=b,{C}"), (aid(5), f"CN=e,{C}")]
    # A commit without an index (an older plan) leaves none: the next plan is a full reconcile.
    state.commit(run.snapshot_dir, {"users": "l"})
    assert DomainIndex.committed(state) is None


def test_the_containers_holding_synced_objects_up_to_the_search_base():
    from domain_sync.dn import normalize_dn

    frame = index_of((aid(1), "user", "a", None, 0))
    for n, dn in ((2, "CN=b\\, c,OU=Old\\,er,OU=Sync,DC=corp,DC=example,DC=test"),
                  (3, "CN=d,OU=Else,DC=corp,DC=example,DC=test")):
        frame.loc[len(frame)] = [aid(n), "user", dn, normalize_dn(dn), None, 0]
    assert holding_containers(frame, "OU=Sync,DC=corp,DC=example,DC=test") == {
        "ou=sync,dc=corp,dc=example,dc=test", "ou=old\\,er,ou=sync,dc=corp,dc=example,dc=test"}


def test_a_create_whose_account_name_was_not_looked_up_makes_the_plan_full():
    create = Change(Op.CREATE, "user", aid(1), f"CN=a,{C}", values={"sAMAccountName": ["ana-7"]})
    assert unlooked_names([create], {"ana", "ana-7"}) == []
    assert unlooked_names([create], {"ana"}) == ["ana-7"]


# ---- the names looked up are enough: a plan restricted to them names new objects as the full plan does

names = st.sampled_from(["ana", "bob", "ana.b", "Ana", "x" * 20, "ana-0000", "bo", "ana-2"])


@settings(max_examples=200, deadline=None)
@given(bases=st.lists(names, min_size=1, max_size=6), taken=st.sets(st.text("abnox.-0123", max_size=20)),
       existing=st.sets(st.integers(0, 5)))
def test_account_names_from_the_looked_up_names_are_the_full_ones(bases, taken, existing):
    anchors = [aid(n + 1) for n in range(len(bases))]
    candidates = list(zip(anchors, bases, strict=True))
    have = {anchors[i]: f"has-{i}" for i in existing if i < len(anchors)}
    full = assign_account_names(candidates, have, taken)
    records = [{"anchor": a, "account_name": b, "cn": b} for a, b in candidates]
    # As the incremental plan looks them up: each new object's first name, then all of those it may not get.
    sams, _upns, _cns = wanted_names(records, set(have), SUFFIX, options=1)
    held = {t.lower(): "dn" for t in taken if t.lower() in sams}
    crowded = crowded_new_records(records, set(have), held, {}, SUFFIX)
    sams |= wanted_names(crowded, set(have), SUFFIX)[0]
    restricted = assign_account_names(candidates, have, {t for t in taken if t.lower() in sams})
    # Either the same names, or the plan sees a name past the ones looked up (and makes a full one).
    unlooked = [n for a, n in restricted.items() if a not in have and n.lower() not in sams]
    assert restricted == full or unlooked
    assert len(sams) <= len(bases) * (ACCOUNT_NAME_OPTIONS + 1)


@settings(max_examples=200, deadline=None)
@given(bases=st.lists(st.sampled_from(["Ana", "ana", "Bob", "Ana (x)", "Zoë", "Zoe", "ＢＯＢ"]), min_size=1, max_size=6),
       local=st.sets(st.sampled_from(["ana", "bob", "zoë", "zoe", "carl", "ana (00000000)", "Ána",
                                      "ana (00000000000000000000000000000002)"])),
       existing=st.dictionaries(st.integers(0, 5), st.integers(0, 2)))
def test_common_names_from_the_looked_up_names_are_the_full_ones(bases, local, existing):
    anchors = [aid(n + 1) for n in range(len(bases))]
    candidates = list(zip(anchors, bases, strict=True))
    from domain_sync.naming import common_name_options

    current = {anchors[i]: common_name_options(anchors[i], bases[i])[form]
               for i, form in existing.items() if i < len(anchors)}
    full = assign_common_names(candidates, local, current)
    records = [{"anchor": a, "account_name": "n", "cn": b} for a, b in candidates]
    _s, _u, cns = wanted_names(records, set(current), SUFFIX)
    looked = {name_key(c) for c in cns}
    assert assign_common_names(candidates, {n for n in local if name_key(n) in looked}, current) == full


# ---- plan_changes over a restricted set, with the rest settled, gives the full plan's changes

def _records(rows: list[dict]) -> pd.DataFrame:
    columns = RECORD_BASE_COLUMNS + [attr_column("displayName"), attr_column("userPrincipalName")]
    return pd.DataFrame(rows, columns=columns)


def _user(n: int, name: str, manager: int | None = None) -> dict:
    return {"anchor": aid(n), "kind": "user", "cn": name, "account_name": name, "enabled": True,
            "password_never_expires": False, "manager_anchor": aid(manager) if manager else None,
            attr_column("displayName"): name, attr_column("userPrincipalName"): f"{name}{SUFFIX}"}


def _group(n: int, name: str) -> dict:
    return {"anchor": aid(n), "kind": "group", "cn": name, "account_name": name, "security_enabled": True,
            attr_column("displayName"): name, attr_column("userPrincipalName"): None}


def _in_domain(n: int, name: str, kind: str = "user", members=(), manager: str | None = None) -> ObservedObject:
    attributes = {"samaccountname": [name], "displayname": [name], "useraccountcontrol": ["512"]}
    if kind == "user":
        attributes["userprincipalname"] = [f"{name}{SUFFIX}"]
        attributes["manager"] = [manager] if manager else []
    else:
        attributes = {"samaccountname": [name], "displayname": [name], "grouptype": [str(-2147483646)]}
    return ObservedObject(aid(n), kind, f"CN={name},{C}", attributes, members=list(members), guid=aid(100 + n))


def test_a_restricted_plan_with_settled_objects_gives_the_full_plans_changes():
    """ana (1) manages bob (2); team (10) holds ana, bob and cyd (3). Changed: bob's name (a rename), cyd's
    removal from team and a new user dan (4) reporting to ana and joining team. ana and eve (5) are settled: the
    manager value and the member values naming ana come from the index."""
    users = _records([_user(1, "ana"), _user(2, "bobby", manager=1), _user(3, "cyd"), _user(4, "dan", manager=1),
                      _user(5, "eve")])
    groups = _records([_group(10, "team")])
    members = pd.DataFrame([(aid(10), aid(1)), (aid(10), aid(2)), (aid(10), aid(4))], columns=RECORD_MEMBER_COLUMNS)
    objects = {o.anchor: o for o in (
        _in_domain(1, "ana"), _in_domain(2, "bob", manager=f"CN=ana,{C}"), _in_domain(3, "cyd"), _in_domain(5, "eve"),
        _in_domain(10, "team", "group", members=[f"CN=ana,{C}", f"CN=bob,{C}", f"CN=cyd,{C}"]))}

    def names_of(objs):
        return ({o.first("sAMAccountName").lower(): o.dn for o in objs},
                {o.first("userPrincipalName").lower(): o.dn for o in objs if o.first("userPrincipalName")})

    account, principal = names_of(objects.values())
    full_domain = ObservedDomain(C, [], dict(objects), account, principal, set(),
                                 {o.dn.lower() for o in objects.values()})
    full, _ = plan_changes(PlanInputs(users, groups, members), full_domain, "mS-DS-ConsistencyGuid")

    changed = {aid(2), aid(3), aid(4), aid(10)}
    read = {a: o for a, o in objects.items() if a in changed}
    settled = {a: o for a, o in objects.items() if a not in changed}
    account, principal = names_of(read.values())
    account |= {"ana": f"CN=ana,{C}"}  # what the name look-ups find: dan's names are free, ana's UPN local part
    restricted_domain = ObservedDomain(
        C, [], read, account, principal, {"ana", "eve"}, {o.dn.lower() for o in read.values()},
        known={a: KnownObject(o.kind, o.dn, o.guid) for a, o in settled.items()},
        known_keys={o.dn.lower(): a for a, o in settled.items()})
    restricted_inputs = PlanInputs(users[users["anchor"].isin(changed)], groups[groups["anchor"].isin(changed)],
                                   members[members["group_anchor"].isin(changed)], settled=set(settled))
    incremental, _ = plan_changes(restricted_inputs, restricted_domain, "mS-DS-ConsistencyGuid")
    assert [c.to_json() for c in incremental.changes] == [c.to_json() for c in full.changes]
    ops = {(c.op, c.anchor) for c in full.changes}
    assert {("rename", aid(2)), ("create", aid(4)), ("add_members", aid(10)),
            ("remove_members", aid(10)), ("modify", aid(4))} <= ops  # dan's manager: ana, settled


# ---- a group in the changed set only through some of its members: diffed for those members alone

def test_a_big_group_changed_only_through_members_is_diffed_for_them_alone_with_the_full_plans_changes():
    """all holds every user in the tenant, small changed in the tenant. Changed: u5 entered scope (in the
    domain, disabled, not in all), u6 and u7 left quarantine (all wants u6, which the domain lacks, and not u7,
    which the domain still holds: it was held when the tenant dropped it), u8's display name. all is read without
    its member values: its members among the changed objects come from their memberOf, its member count from the
    index; the plan is the full one's. A group desiring a member deleted in the domain is read whole."""
    n, ALL, SMALL = 3000, 10_000, 10_001  # noqa: N806
    all_dn, small_dn, local_dn = f"CN=all,{C}", f"CN=small,{C}", "CN=local,OU=Other,DC=corp,DC=example,DC=test"
    users = _records([_user(i, f"u{i}") for i in range(1, n + 1)])
    users.loc[users["anchor"] == aid(8), attr_column("displayName")] = "u8 renamed"
    groups = _records([_group(ALL, "all"), _group(SMALL, "small")])
    members = pd.DataFrame([(aid(ALL), aid(i)) for i in range(1, n + 1) if i != 7] + [(aid(SMALL), aid(1)), (aid(SMALL), aid(2))],
                           columns=RECORD_MEMBER_COLUMNS)
    objects = {o.anchor: o for o in [_in_domain(i, f"u{i}") for i in range(1, n + 1)]}
    objects[aid(5)].attributes["useraccountcontrol"] = ["514"]
    in_all = [f"CN=u{i},{C}" for i in range(1, n + 1) if i not in (5, 6)] + [local_dn]
    objects[aid(ALL)] = _in_domain(ALL, "all", "group", members=in_all)
    objects[aid(SMALL)] = _in_domain(SMALL, "small", "group", members=[f"CN=u{i},{C}" for i in (1, 2, 3)])
    full_domain = ObservedDomain(C, [], dict(objects), {o.first("sAMAccountName"): o.dn for o in objects.values()},
                                 {o.first("userPrincipalName").lower(): o.dn for o in objects.values()
                                  if o.first("userPrincipalName")}, set(), {o.dn.lower() for o in objects.values()})
    full, _ = plan_changes(PlanInputs(users, groups, members), full_domain, "mS-DS-ConsistencyGuid")

    index = index_of(*[(a, o.kind, o.dn.split(",")[0][3:], o.guid, len(o.members)) for a, o in objects.items()])
    changed = {aid(5), aid(6), aid(7), aid(8), aid(SMALL), aid(ALL)}
    by_members = member_dependents({aid(ALL), aid(1)}, index, members)
    assert by_members == {aid(ALL)}
    assert member_dependents({aid(ALL)}, index, members, deleted={aid(9)}) == set()
    assert member_dependents({aid(ALL)}, index, members, deleted={aid(7)}) == {aid(ALL)}  # not one all desires
    # What the read gives: the changed objects with their memberOf; all without its member values.
    read = {a: ObservedObject(o.anchor, o.kind, o.dn, dict(o.attributes), members=list(o.members), guid=o.guid)
            for a, o in objects.items() if a in changed}
    read[aid(ALL)].members = []
    backlinks = {aid(7): {"memberof": [all_dn.upper()]}, aid(8): {"memberof": [all_dn, small_dn]},
                 aid(5): {"memberof": []}, aid(SMALL): {"memberof": []}}
    members_from_backlinks(read, backlinks, by_members, index)
    assert sorted(read[aid(ALL)].members) == [f"CN=u7,{C}", f"CN=u8,{C}"] and read[aid(SMALL)].member_total is None
    restricted_members = restrict_members(members, changed, by_members)
    assert set(map(tuple, restricted_members.to_numpy())) == {
        (aid(ALL), aid(i)) for i in (5, 6, 8)} | {(aid(SMALL), aid(1)), (aid(SMALL), aid(2))}
    settled = {a: o for a, o in objects.items() if a not in changed}
    restricted_domain = ObservedDomain(
        C, [], read, {o.first("sAMAccountName"): o.dn for o in read.values()},
        {o.first("userPrincipalName").lower(): o.dn for o in read.values() if o.first("userPrincipalName")},
        {"u1", "u2", "u3"}, {o.dn.lower() for o in read.values()},
        known={a: KnownObject(o.kind, o.dn, o.guid) for a, o in settled.items()},
        known_keys={o.dn.lower(): a for a, o in settled.items()})
    restricted_inputs = PlanInputs(users[users["anchor"].isin(changed)], groups[groups["anchor"].isin(changed)],
                                   restricted_members, settled=set(settled))
    incremental, _ = plan_changes(restricted_inputs, restricted_domain, "mS-DS-ConsistencyGuid")
    assert [c.to_json() for c in incremental.changes] == [c.to_json() for c in full.changes]
    moves = {(c.op, c.anchor, m) for c in full.changes if c.members for m in c.members}
    assert moves == {("add_members", aid(ALL), f"<GUID={aid(105)}>"), ("add_members", aid(ALL), f"<GUID={aid(106)}>"),
                     ("remove_members", aid(ALL), f"<GUID={aid(107)}>"),
                     ("remove_members", aid(SMALL), f"<GUID={aid(103)}>")}
    # The index keeps all's whole member count (n - 2 users and the local member), not the two read.
    frame = updated_index(index, changed, restricted_domain)
    assert dict(zip(frame["anchor"], frame["members"], strict=True))[aid(ALL)] == n - 1


def test_member_values_spelt_as_a_synced_objects_dn_are_not_parsed():
    """A group read whole (changed in the tenant) holding every settled user: its member values are found by the
    DNs the index holds, not parsed; one spelt otherwise (case), an unreadable one and a local one are parsed."""
    n, team = 500, 10_000
    users = _records([_user(i, f"u{i}") for i in range(1, n + 1)])
    groups = _records([_group(team, "team")])
    members = pd.DataFrame([(aid(team), aid(i)) for i in range(1, n + 1) if i != 4], columns=RECORD_MEMBER_COLUMNS)
    values = [f"CN=u{i},{C}" for i in range(1, n + 1) if i not in (3, 5)]
    values += [f"cn=U3,{C.lower()}", "CN=bad\\", "CN=local,OU=Other,DC=corp,DC=example,DC=test"]
    read = {aid(team): _in_domain(team, "team", "group", members=values)}
    known = {aid(i): KnownObject("user", f"CN=u{i},{C}", aid(100 + i)) for i in range(1, n + 1)}
    observed = ObservedDomain(C, [], read, {"team": f"CN=team,{C}"}, {}, set(), {f"cn=team,{C.lower()}"},
                              known=known, known_keys={f"cn=u{i},{C.lower()}": aid(i) for i in range(1, n + 1)})
    inputs = PlanInputs(users.iloc[0:0], groups, members, settled=set(known))
    normalize_dn.cache_clear()
    changes, _ = plan_changes(inputs, observed, "mS-DS-ConsistencyGuid")
    assert normalize_dn.cache_info().misses < 20
    assert [(c.op, c.members) for c in changes.changes] == [(Op.ADD_MEMBERS, [f"<GUID={aid(105)}>"]),
                                                           (Op.REMOVE_MEMBERS, [f"<GUID={aid(104)}>"])]
    assert observed.unreadable == ["CN=bad\\"]


def test_the_index_kept_holds_member_counts_as_the_plan_leaves_them():
    objects = [ObservedObject(aid(1), "group", f"CN=g1,{C}", {}, members=[f"CN=a,{C}", f"CN=b,{C}"], guid=aid(101)),
               ObservedObject(aid(2), "group", f"CN=g2,{C}", {}, members=[f"CN=a,{C}"], guid=aid(102)),
               ObservedObject(aid(3), "user", f"CN=a,{C}", {}, guid=aid(103))]
    index = DomainIndex(index_frame(objects), new_meta({"usn": 5, "server": "dc"}, "f", set(), set(), 0))
    changes = [Change(Op.ADD_MEMBERS, "group", aid(1).upper(), f"CN=g1,{C}", members=["<GUID=1>", "<GUID=2>"]),
               Change(Op.REMOVE_MEMBERS, "group", aid(1), f"CN=g1,{C}", members=["<GUID=3>"]),
               Change(Op.REMOVE_MEMBERS, "group", aid(2), f"CN=g2,{C}", members=["<GUID=4>", "<GUID=5>"]),
               Change(Op.MODIFY, "user", aid(3), f"CN=a,{C}", values={"title": ["x"]})]
    after = index.after(changes)
    assert after.group_members() == {aid(1): 3, aid(2): 0}  # 2 + 2 - 1; 1 - 2 is none left
    assert index.group_members() == {aid(1): 2, aid(2): 1}  # what the guards take: the counts read
    assert index.after(changes[3:]) is index and after.meta["recount"] == []
    # A member this plan creates (named by its DN: apply drops it if the create fails) is not counted; the
    # group is read whole by the next plan instead.
    created = Change(Op.ADD_MEMBERS, "group", aid(2), f"CN=g2,{C}", members=["<GUID=6>", f"CN=new,{C}"])
    after = index.after([created])
    assert after.group_members()[aid(2)] == 2 and after.meta["recount"] == [aid(2)]
    reasons = changed_set_of(inputs(index=after.frame, meta=after.meta))
    assert reasons["recount"] == {aid(2)}


def test_the_names_a_read_object_holds_alone_are_its_account_name_and_its_cn_in_the_container():
    """What the name lookups of an incremental plan can leave out: a name only the read object itself can hold
    (its sAMAccountName, unique in the domain; its cn directly in the container, unique there as part of a DN).
    A cn elsewhere, a UPN (Windows AD enforces it unique, older domains may not) and a non-ASCII account name
    (the DC's case rules may not be Python's) are still looked up."""
    container = "OU=Sync,DC=corp,DC=example,DC=test"
    objects = [
        ObservedObject("a1", "user", f"CN=Ana Lima,{container}",
                       {"samaccountname": ["ALima"], "cn": ["Ana Lima"], "userprincipalname": ["ana@corp.example.test"]}),
        ObservedObject("b2", "user", f"CN=Bo Ek,OU=Moved,{container}", {"samaccountname": ["boek"], "cn": ["Bo Ek"]}),
        ObservedObject("c3", "group", f"cn=Équipe,{container.lower()}", {"samaccountname": ["Équipe"], "cn": ["Équipe"]}),
    ]
    accounts, cns = names_held_alone(objects, container)
    assert accounts == {"alima": f"CN=Ana Lima,{container}", "boek": f"CN=Bo Ek,OU=Moved,{container}"}
    assert cns == {"Ana Lima", "Équipe"}


# Pieces of names whose folding differs between the plan's key (naming.name_key) and a DC (Samba folds neither
# 'ß' nor Georgian Mtavruli, nor the long s, the Kelvin sign, ligatures, final sigma; nor accents, width or kana
# type, which Windows AD ignores), and DN specials.
FOLD_TRAPS = ["ß", "ss", "SS", "ẞ", "ნ", "Ნ", "İ", "i̇", "i", "ſ", "s", "K", "k", "ﬁ", "fi", "Σ", "σ", "ς", ",", "#",
              " ", "\\", "Ana", "é", "É", "e", "ｅ", "ア", "あ", "ø", "o", "，", "\u200b"]
trap_names = st.lists(st.sampled_from(FOLD_TRAPS), min_size=1, max_size=4).map("".join)


@settings(max_examples=300, deadline=None)
@given(wanted=st.sets(trap_names, max_size=6), local=st.sets(trap_names, max_size=4),
       settled=st.sets(trap_names, max_size=4))
def test_a_wanted_cn_is_held_when_a_local_or_a_settled_object_holds_it_under_the_plans_key(wanted, local, settled):
    """What the full plan's read of the container sees (every cn, compared by name_key), whatever the DC's own
    matching would find: a cn held by a local object, or by a synced one the incremental plan does not read."""
    local_dns = [child_dn("CN", n, C) for n in local] + [child_dn("OU", n, C) for n in local]  # an OU holds no cn
    settled_dns = {normalize_dn(child_dn("CN", n, C)): child_dn("CN", n, C) for n in settled}
    held = cns_held_by_key(wanted, C, local_dns, settled_dns)
    for cn in wanted:
        holders = [n for n in local | settled if name_key(n) == name_key(cn)]
        assert (name_key(cn) in held) == bool(holders), (cn, holders, held)
    assert set(held) <= {name_key(cn) for cn in wanted}


def test_names_windows_ad_takes_for_the_ascii_ones_the_sync_gives_are_held_under_their_keys():
    """A local "jürgen" (or a full-width UPN) holds "jurgen" as Windows AD compares names: the plan's name maps
    hold it under that key too, from a full read, from the DC's answers, and from the index brought up to date
    by the domain's changes (Samba's matching does not find it when the incremental plan looks "jurgen" up)."""
    assert folded_name_keys(["jürgen", "ANA", "Ｍｕｌｌｅｒ", "zoë", "Zoë"]) == ["jurgen", "muller", "zoe"]
    assert folded_name_keys(["plain", "ÆSA"]) == ["aesa"] and folded_entry("CN=x", ["plain"], ["a@b"]) is None
    accounts, principals = {"jurgen": "CN=Ascii"}, {}
    add_folded_names(accounts, principals, [["CN=J", ["jurgen", "muller"], ["jurgen@contoso.example"]]])
    assert accounts == {"jurgen": "CN=Ascii", "muller": "CN=J"}  # a name held as it is stays with its holder
    assert principals == {"jurgen@contoso.example": "CN=J"}
    before = {aid(1): ["CN=A", ["a"], []], aid(2): ["CN=B", ["b"], []], aid(3): ["CN=C", ["c"], []]}
    delta = DomainDelta(deleted_guids={aid(1)}, folded={aid(2): None, aid(4): ["CN=D", [], ["d@x"]]})
    assert delta.folded_names(before) == {aid(3): ["CN=C", ["c"], []], aid(4): ["CN=D", [], ["d@x"]]}
    assert DomainDelta().folded_names(before) == before


def test_the_containers_local_objects_are_the_last_plans_with_the_domains_changes_since():
    """The incremental plan's view of the container's local objects (what a full plan reads whole): the index's,
    less the ones deleted, moved out or now synced, plus the ones added, moved in or renamed since."""
    before = {aid(1): f"CN=Kept,{C}", aid(2): f"CN=Deleted,{C}", aid(3): f"CN=Moved out,{C}",
              aid(4): f"CN=Old name,{C}", aid(5): f"CN=Marked now,{C}"}
    delta = DomainDelta(deleted_guids={aid(2)},
                        children={aid(3): None, aid(4): f"CN=New name,{C}", aid(5): None, aid(6): f"CN=Added,{C}",
                                  aid(7): None})
    assert delta.local_in_container(before) == {aid(1): f"CN=Kept,{C}", aid(4): f"CN=New name,{C}",
                                                aid(6): f"CN=Added,{C}"}
    assert DomainDelta().local_in_container(before) == before


def test_objects_of_ours_gone_from_the_search_base_and_not_among_the_domains_changes_are_deleted(monkeypatch):
    """Where the bind account sees no tombstones: an object of ours missing under the search base is deleted,
    unless the domain's changes hold it (moved away: the changed set reads it where it is now)."""
    import domain_sync.plan.observed as observed

    def entry(n: int) -> dict:
        return {"dn": f"CN=o{n},{C}", "attributes": {}, "raw_attributes": {"objectGUID": [uuid.UUID(aid(n)).bytes_le]}}

    searched = []

    def search_entries(conn, base, search_filter, attributes, scope="SUBTREE", controls=None):
        searched.append((base, attributes))
        return iter([entry(1), entry(2)])

    monkeypatch.setattr(observed, "search_entries", search_entries)
    delta = DomainDelta(guids={aid(3).upper()}, children={aid(4): None})
    ours = {aid(n).upper() for n in (1, 2, 3, 4, 5)}
    assert observed.missing_guids(object(), C, ours, delta) == {aid(5)}
    assert searched == [(C, ["objectGUID"])]
