"""Planning: desired records against an observed domain (no LDAP here; the observed side is built)."""

import pandas as pd

from domain_sync.dn import normalize_dn
from domain_sync.plan.changeset import (
    UF_ACCOUNTDISABLE,
    UF_NORMAL_ACCOUNT,
    PlanInputs,
    plan_changes,
    user_account_control,
)
from domain_sync.plan.guards import deletion_guard
from domain_sync.plan.observed import ObservedDomain, ObservedObject
from domain_sync.records import RECORD_BASE_COLUMNS, RECORD_MEMBER_COLUMNS, attr_column

C = "OU=AADDC Users,DC=corp,DC=example,DC=test"
ANCHOR = "mS-DS-ConsistencyGuid"
U1 = "11111111-1111-1111-1111-111111111111"
U2 = "22222222-2222-2222-2222-222222222222"
G1 = "99999999-9999-9999-9999-999999999999"


def user(anchor, name, enabled=True, upn=None, display=None):
    return {"anchor": anchor, "kind": "user", "cn": display or name, "account_name": name, "enabled": enabled,
            "password_never_expires": False, "security_enabled": None, "manager_anchor": None,
            attr_column("userPrincipalName"): upn or f"{name}@corp.example.test",
            attr_column("displayName"): display or name}


def group(anchor, name):
    return {"anchor": anchor, "kind": "group", "cn": name, "account_name": name, "enabled": None,
            "password_never_expires": None, "security_enabled": True, "manager_anchor": None,
            attr_column("displayName"): name}


def frame(rows, columns):
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def inputs(users=(), groups=(), members=(), quarantined=()):
    return PlanInputs(
        frame(list(users), RECORD_BASE_COLUMNS + [attr_column("userPrincipalName"), attr_column("displayName")]),
        frame(list(groups), RECORD_BASE_COLUMNS + [attr_column("displayName")]),
        frame(list(members), RECORD_MEMBER_COLUMNS),
        set(quarantined),
    )


def observed(objects=(), names=None, upns=None, missing=()):
    objs = {o.anchor: o for o in objects}
    return ObservedDomain(C, list(missing), objs, names or {}, upns or {}, set(),
                          {normalize_dn(o.dn) for o in objects})


def observed_user(anchor, name, dn_cn=None, enabled=True, display=None):
    display = display or name
    return ObservedObject(anchor, "user", f"CN={dn_cn or display},{C}", {
        "samaccountname": [name], "userprincipalname": [f"{name}@corp.example.test"], "displayname": [display],
        "useraccountcontrol": [str(UF_NORMAL_ACCOUNT | (0 if enabled else UF_ACCOUNTDISABLE))]})


def ops(change_set):
    return [(c.op, c.anchor) for c in change_set.changes]


def test_new_objects_are_created_with_container_first_and_members_last():
    cs, _ = plan_changes(inputs([user(U1, "ana")], [group(G1, "Sales")], [(G1, U1)]), observed(missing=[C]), ANCHOR)
    assert [c.op for c in cs.changes] == ["create_container", "create", "create", "add_members"]
    create = cs.changes[1]
    assert create.values["sAMAccountName"] == ["ana"] and create.values[ANCHOR] == [bytes.hex(
        __import__("uuid").UUID(U1).bytes_le)]


def test_matching_domain_plans_nothing():
    cs, _ = plan_changes(inputs([user(U1, "ana")]), observed([observed_user(U1, "ana")]), ANCHOR)
    assert cs.changes == []


def test_only_differing_attributes_are_modified():
    cs, _ = plan_changes(inputs([user(U1, "ana", display="Ana")]),
                         observed([observed_user(U1, "ana", dn_cn="Ana", display="ana")]), ANCHOR)
    assert ops(cs) == [("modify", U1)] and cs.changes[0].values == {"displayName": ["Ana"]}


def test_display_name_change_is_a_rename_not_delete_and_create():
    cs, _ = plan_changes(inputs([user(U1, "ana", display="Ana Lima")]),
                         observed([observed_user(U1, "ana", display="Ana")]), ANCHOR)
    assert [c.op for c in cs.changes] == ["rename", "modify"]
    assert cs.changes[0].new_dn == f"CN=Ana Lima,{C}"


def test_disabled_in_tenant_is_a_disable_keeping_other_bits():
    assert user_account_control(False, False, 0x10200) == 0x202
    cs, _ = plan_changes(inputs([user(U1, "ana", enabled=False)]), observed([observed_user(U1, "ana")]), ANCHOR)
    assert ops(cs) == [("disable", U1)]


def test_objects_gone_from_the_tenant_are_deleted_but_quarantined_ones_are_kept():
    obs = observed([observed_user(U1, "ana"), observed_user(U2, "bob")])
    cs, _ = plan_changes(inputs([], quarantined=[U2]), obs, ANCHOR)
    assert ops(cs) == [("delete", U1)]


def test_upn_held_by_a_local_object_quarantines_the_tenant_object():
    local = "CN=Ana,CN=Users,DC=corp,DC=example,DC=test"
    cs, collisions = plan_changes(inputs([user(U1, "ana")]), observed(upns={"ana@corp.example.test": local}), ANCHOR)
    assert cs.changes == [] and collisions[0].local_dn == local and "untouched" in collisions[0].reason()


def test_account_name_held_by_a_local_object_is_suffixed():
    local = "CN=ana,CN=Users,DC=corp,DC=example,DC=test"
    cs, collisions = plan_changes(inputs([user(U1, "ana", upn="x@corp.example.test")]),
                                  observed(names={"ana": local}), ANCHOR)
    assert cs.changes[0].values["sAMAccountName"] == ["ana-1111"]
    assert collisions[0].attribute == "sAMAccountName"


def test_membership_changes_are_incremental():
    g = ObservedObject(G1, "group", f"CN=Sales,{C}", {"samaccountname": ["Sales"], "displayname": ["Sales"],
                                                    "grouptype": [str(-2147483646)]},
                       members=[f"CN=ana,{C}"])
    obs = observed([observed_user(U1, "ana"), observed_user(U2, "bob"), g])
    cs, _ = plan_changes(inputs([user(U1, "ana"), user(U2, "bob")], [group(G1, "Sales")], [(G1, U2)]), obs, ANCHOR)
    assert [(c.op, c.members) for c in cs.changes] == [("add_members", [f"CN=bob,{C}"]),
                                                       ("remove_members", [f"CN=ana,{C}"])]


def test_deletion_guard_counts_deletes_and_disables_per_type():
    obs = observed([observed_user(f"{i:08d}-0000-0000-0000-000000000000", f"u{i}") for i in range(30)])
    cs, _ = plan_changes(inputs([]), obs, ANCHOR)
    assert deletion_guard(cs, {"user": 30}, max_deletes=500, max_share=0.5, share_min_objects=20)
    assert not deletion_guard(cs, {"user": 30}, max_deletes=500, max_share=1.0, share_min_objects=20)
    assert deletion_guard(cs, {"user": 30}, max_deletes=10, max_share=1.0, share_min_objects=20)


def test_a_quarantined_member_keeps_its_group_memberships():
    g = ObservedObject(G1, "group", f"CN=Sales,{C}", {"samaccountname": ["Sales"], "displayname": ["Sales"],
                                                    "grouptype": [str(-2147483646)]},
                       members=[f"CN=ana,{C}"])
    obs = observed([observed_user(U1, "ana"), g])
    cs, _ = plan_changes(inputs([user(U1, "ana")], [group(G1, "Sales")], [], quarantined=[U1]), obs, ANCHOR)
    assert cs.changes == []


def test_account_name_equal_to_another_users_upn_in_the_domain_dns_name_is_suffixed():
    # Samba and AD treat sAMAccountName@<DNS domain> as an implied UPN of every account.
    cs, _ = plan_changes(inputs([user(U1, "robert", upn="bob@corp.example.test"),
                                 user(U2, "bob", upn="bobby@corp.example.test")]), observed(), ANCHOR)
    names = {c.anchor: c.values["sAMAccountName"][0] for c in cs.changes if c.op == "create"}
    assert names[U1] == "robert" and names[U2] == "bob-2222"


def test_a_deleted_objects_name_taken_by_a_new_object_is_freed_before_the_create():
    old = ObservedObject(G1, "group", f"CN=Sales,{C}", {"samaccountname": ["Sales"], "displayname": ["Sales"],
                                                      "grouptype": [str(-2147483646)]})
    new_group = "88888888-8888-8888-8888-888888888888"
    cs, _ = plan_changes(inputs([], [group(new_group, "Sales")]), observed([old]), ANCHOR)
    assert [(c.op, c.anchor) for c in cs.changes] == [("delete", G1), ("create", new_group)]


def test_objects_that_swap_names_go_through_a_temporary_name():
    obs = observed([observed_user(U1, "ana", display="Ana"), observed_user(U2, "bob", display="Bob")])
    cs, _ = plan_changes(inputs([user(U1, "ana", display="Bob"), user(U2, "bob", display="Ana")]), obs, ANCHOR)
    renames = [(c.anchor, c.dn.split(",")[0], c.new_dn.split(",")[0]) for c in cs.changes if c.op == "rename"]
    assert renames == [(U1, "CN=Ana", f"CN=renaming {U1}"), (U2, "CN=Bob", "CN=Ana"), (U1, f"CN=renaming {U1}", "CN=Bob")]


def test_a_new_object_may_take_the_name_an_existing_one_moves_away_from():
    obs = observed([observed_user(U1, "ana", display="Ana")])
    cs, _ = plan_changes(inputs([user(U1, "ana", display="Ana Lima"), user(U2, "ana2", display="Ana")]), obs, ANCHOR)
    assert [c.op for c in cs.changes][:2] == ["rename", "create"]


def test_a_domain_user_the_tenant_has_out_of_scope_is_disabled_not_deleted():
    obs = observed([observed_user(U1, "ana"), observed_user(U2, "bob", enabled=False)])
    empty = inputs()
    empty.out_of_scope = {U1, U2}
    cs, _ = plan_changes(empty, obs, ANCHOR)
    assert [(c.op, c.anchor) for c in cs.changes] == [("disable", U1)]


U3 = "33333333-3333-3333-3333-333333333333"
G2 = "88888888-8888-8888-8888-888888888888"


def with_guid(obj, guid):
    obj.guid = guid
    return obj


def test_every_write_to_an_existing_object_names_its_observed_guid():
    obj = with_guid(observed_user(U1, "ana", display="Ana"), "aaaaaaaa-0000-0000-0000-00000000000a")
    gone = with_guid(observed_user(U2, "bob"), "bbbbbbbb-0000-0000-0000-00000000000b")
    cs, _ = plan_changes(inputs([user(U1, "ana", display="Ana Lima")]), observed([obj, gone]), ANCHOR)
    by_op = {c.op: c for c in cs.changes}
    assert by_op["rename"].guid == obj.guid and by_op["modify"].guid == obj.guid
    assert by_op["delete"].guid == gone.guid


def test_a_case_only_display_name_change_renames_the_cn():
    obj = observed_user(U1, "js", display="john smith")
    cs, _ = plan_changes(inputs([user(U1, "js", display="John Smith")]), observed([obj]), ANCHOR)
    rename = next(c for c in cs.changes if c.op == "rename")
    assert rename.new_dn.startswith("CN=John Smith,")


def test_an_existing_cn_stays_and_the_newcomer_with_the_same_name_gets_the_suffix():
    obj = observed_user(U2, "ana", display="Ana Lima")
    cs, _ = plan_changes(inputs([user(U2, "ana", display="Ana Lima"), user(U1, "ana2", display="Ana Lima")]),
                         observed([obj]), ANCHOR)
    assert not [c for c in cs.changes if c.op == "rename"]
    create = next(c for c in cs.changes if c.op == "create")
    assert create.anchor == U1 and create.dn.startswith("CN=Ana Lima (11111111),")


def test_a_tenant_upn_implied_by_a_local_accounts_sam_is_a_plan_time_collision():
    local = "CN=Local Ana,CN=Users,DC=corp,DC=example,DC=test"
    cs, collisions = plan_changes(inputs([user(U1, "ana.lima", upn="ana@corp.example.test")]),
                                  observed(names={"ana": local}), ANCHOR)
    assert [(c.anchor, c.attribute, c.local_dn) for c in collisions] == [(U1, "userPrincipalName", local)]
    assert "implied" in collisions[0].reason() and "change the UPN" in collisions[0].reason()
    assert not [c for c in cs.changes if c.op == "create"]


def test_a_group_never_takes_a_sam_that_is_a_users_upn_local_part():
    cs, collisions = plan_changes(inputs([user(U1, "ana.lima", upn="sales@corp.example.test")], [group(G1, "sales")]),
                                  observed(), ANCHOR)
    names = {c.anchor: c.values["sAMAccountName"][0] for c in cs.changes if c.op == "create"}
    assert names[G1].lower() != "sales" and not collisions


def test_a_name_freed_by_a_delete_is_taken_by_a_create_in_the_same_run_delete_first():
    gone = observed_user(U2, "ana", display="Old Ana")
    cs, collisions = plan_changes(inputs([user(U1, "ana", display="New Ana")]),
                                  observed([gone], names={"ana": gone.dn},
                                           upns={"ana@corp.example.test": gone.dn}), ANCHOR)
    assert not collisions
    create = next(c for c in cs.changes if c.op == "create")
    assert create.values["sAMAccountName"] == ["ana"]
    assert ops(cs).index(("delete", U2)) < ops(cs).index(("create", U1))


def test_a_delete_freeing_the_upn_a_new_accounts_name_implies_goes_before_the_create():
    """AD: a new account's sAMAccountName@<the domain's DNS name> collides with another account's explicit
    UPN. When that account leaves in the same run, its delete goes first."""
    gone = observed_user(U2, "old2", display="Old")
    gone.attributes["userprincipalname"] = ["gir@corp.example.test"]
    cs, collisions = plan_changes(inputs([user(U1, "gir", upn="gir@tenant.example", display="Gir")]),
                                  observed([gone], names={"old2": gone.dn}, upns={"gir@corp.example.test": gone.dn}),
                                  ANCHOR)
    assert not collisions
    assert next(c for c in cs.changes if c.op == "create").values["sAMAccountName"] == ["gir"]
    assert ops(cs).index(("delete", U2)) < ops(cs).index(("create", U1))


def test_a_modify_freeing_a_upn_another_object_takes_goes_first():
    """ana's UPN moves from x@ to y@ while bob's moves to x@: ana's name step goes before bob's modify (in one
    phase the two race, and bob's may be refused with 19 until the next run)."""
    ana, bob = observed_user(U1, "ana", display="Ana"), observed_user(U2, "bob", display="Bob")
    ana.attributes["userprincipalname"] = ["x@corp.example.test"]
    records = [user(U1, "ana", upn="y@corp.example.test", display="Ana"),
               user(U2, "bob", upn="x@corp.example.test", display="Bob")]
    records[0][attr_column("displayName")] = "Ana L."
    cs, collisions = plan_changes(inputs(records), observed([ana, bob], names={"ana": ana.dn, "bob": bob.dn},
                                                           upns={"x@corp.example.test": ana.dn,
                                                                 "bob@corp.example.test": bob.dn}), ANCHOR)
    assert not collisions
    steps = [(c.op, c.anchor, sorted(c.values)) for c in cs.changes]
    assert steps.index(("modify", U1, ["userPrincipalName"])) < steps.index(("modify", U2, ["userPrincipalName"]))
    assert ("modify", U1, ["displayName"]) in steps  # the rest of ana's modify stays in its place


def test_a_upn_a_synced_object_keeps_is_a_collision_for_the_newcomer():
    """A soft-deleted user keeps its UPN in the domain (disabled); a new tenant user given the same UPN is a
    plan-time collision, not a create the domain refuses run after run."""
    kept = observed_user(U1, "ana", enabled=False)
    kept.attributes["userprincipalname"] = ["ana@tenant.example"]
    domain = observed([kept], names={"ana": kept.dn}, upns={"ana@tenant.example": kept.dn})
    cs, collisions = plan_changes(inputs([user(U1, "ana", enabled=False, upn="ana@tenant.example"),
                                          user(U2, "ana2", upn="ana@tenant.example")]), domain, ANCHOR)
    assert [(c.anchor, c.attribute) for c in collisions] == [(U2, "userPrincipalName")]
    assert not [c for c in cs.changes if c.anchor == U2]
    # Held by a synced object that is not in the plan at all (quarantined): the same.
    cs, collisions = plan_changes(inputs([user(U2, "ana2", upn="ana@tenant.example")], quarantined={U1}), domain,
                                  ANCHOR)
    assert [(c.anchor, c.attribute) for c in collisions] == [(U2, "userPrincipalName")]
    # Given another UPN by the tenant, the synced object lets go of it: the newcomer takes it, after the release.
    cs, collisions = plan_changes(inputs([user(U1, "ana", enabled=False, upn="ana.old@tenant.example"),
                                          user(U2, "ana2", upn="ana@tenant.example")]), domain, ANCHOR)
    assert not collisions
    assert ops(cs).index(("modify", U1)) < ops(cs).index(("create", U2))


def test_a_upn_kept_because_the_holders_new_upn_collides_is_a_collision_too():
    """ana would move from x@ to y@, but y@ is implied by a local account's sAMAccountName: ana is held and keeps
    x@, so bob, who wants x@, is held too (found by the convergence soak, seed 2140)."""
    ana = observed_user(U1, "ana", display="Ana")
    ana.attributes["userprincipalname"] = ["x@tenant.example"]
    local = f"CN=Y,{C}"
    domain = observed([ana], names={"ana": ana.dn, "y": local}, upns={"x@tenant.example": ana.dn})
    cs, collisions = plan_changes(inputs([user(U1, "ana", upn="y@corp.example.test", display="Ana"),
                                          user(U2, "bob", upn="x@tenant.example")]), domain, ANCHOR)
    assert sorted((c.anchor, c.local_dn) for c in collisions) == [(U1, local), (U2, ana.dn)]
    assert not [c for c in cs.changes if c.anchor in (U1, U2)]


def test_two_objects_with_one_anchor_are_both_held_and_reported():
    a = observed_user(U1, "ana")
    domain = observed([a])
    domain.duplicate_anchors = {U1: [a.dn, f"CN=Ana Copy,{C}"]}
    domain.objects.pop(U1)
    cs, collisions = plan_changes(inputs([user(U1, "ana", display="Ana Renamed")]), domain, ANCHOR)
    assert cs.changes == [] and [c.attribute for c in collisions] == [ANCHOR]


def test_an_owned_object_moved_out_of_the_search_base_is_not_created_again():
    domain = observed([], names={"ana": "CN=Ana,OU=Elsewhere,DC=corp,DC=example,DC=test"})
    domain.owned_outside = {U1: "CN=Ana,OU=Elsewhere,DC=corp,DC=example,DC=test"}
    cs, collisions = plan_changes(inputs([user(U1, "ana"), user(U2, "bob")]), domain, ANCHOR)
    assert [(c.op, c.anchor) for c in cs.changes] == [("create", U2)]
    assert [(c.anchor, c.attribute) for c in collisions] == [(U1, "searchBase")]
    assert "outside the search base" in collisions[0].reason()


def test_an_admins_group_scope_is_kept_only_the_security_bit_is_owned():
    obj = ObservedObject(G1, "group", f"CN=Sales,{C}", {"samaccountname": ["Sales"], "displayname": ["Sales"],
                                                        "grouptype": [str(-2147483640)]})  # universal, security
    cs, _ = plan_changes(inputs(groups=[group(G1, "Sales")]), observed([obj]), ANCHOR)
    assert cs.changes == []
    distribution = dict(group(G1, "Sales"), security_enabled=False)
    cs, _ = plan_changes(inputs(groups=[distribution]), observed([obj]), ANCHOR)
    assert [c.values.get("groupType") for c in cs.changes] == [["8"]]


def test_creates_carry_the_ownership_marker():
    cs, _ = plan_changes(inputs([user(U1, "ana")]), observed(), ANCHOR, owner=("extensionName", "domain-sync:t1"))
    assert cs.changes[0].values["extensionName"] == ["domain-sync:t1"]


def test_only_canonical_tenant_object_ids_are_anchors():
    from domain_sync.naming import is_object_id as is_tenant_object_id

    assert is_tenant_object_id(U1)
    assert not is_tenant_object_id("Group_" + U1)  # group writeback's adminDescription
    assert not is_tenant_object_id("not an id") and not is_tenant_object_id(None)
    assert not is_tenant_object_id("{" + U1 + "}")


def test_the_search_base_defaults_to_the_container_and_must_hold_it():
    import pytest

    from domain_sync.config import Settings, SettingsError
    from domain_sync.plan.stage import search_base_dn

    base = "DC=corp,DC=example,DC=test"
    assert search_base_dn(Settings(container="OU=AADDC Users"), base) == f"OU=AADDC Users,{base}"
    assert search_base_dn(Settings(container="OU=Sync,OU=Sales\\, EMEA", search_base="OU=Sales\\, EMEA"),
                          base) == f"OU=Sales\\, EMEA,{base}"
    with pytest.raises(SettingsError, match="not inside the search base"):
        search_base_dn(Settings(container="OU=AADDC Users", search_base="OU=Elsewhere"), base)


def test_a_rename_into_a_name_another_rename_frees_goes_after_it():
    x = observed_user(U1, "x", display="Alpha")
    y = observed_user(U2, "y", display="Beta")
    cs, _ = plan_changes(inputs([user(U1, "x", display="Beta"), user(U2, "y", display="Gamma")]),
                         observed([x, y]), ANCHOR)
    renames = [(c.anchor, c.new_dn.split(",")[0]) for c in cs.changes if c.op == "rename"]
    assert renames == [(U2, "CN=Gamma"), (U1, "CN=Beta")]


def test_a_users_upn_local_part_is_its_own_account_name_when_another_object_derives_the_same():
    # Both derive "x"; the second one's UPN is x@<the domain's DNS name>: it must be the one named x.
    first = user(U1, "x", upn="x2@corp.example.test", display="First")
    second = user(U2, "x", upn="x@corp.example.test", display="Second")
    cs, collisions = plan_changes(inputs([first, second]), observed(), ANCHOR)
    names = {c.anchor: c.values["sAMAccountName"][0] for c in cs.changes if c.op == "create"}
    assert names[U2] == "x" and names[U1] != "x" and not collisions


def sales(members=(), guid=None):
    g = ObservedObject(G1, "group", f"CN=Sales,{C}", {"samaccountname": ["Sales"], "displayname": ["Sales"],
                                                    "grouptype": [str(-2147483646)]}, members=list(members))
    g.guid = guid
    return g


def test_a_deleted_member_is_never_removed_by_dn_when_another_object_is_renamed_into_its_name():
    old = with_guid(observed_user(U1, "old", display="Alex Moss"), "aaaaaaaa-0000-0000-0000-00000000000a")
    new = with_guid(observed_user(U2, "new", display="Alex M"), "bbbbbbbb-0000-0000-0000-00000000000b")
    obs = observed([old, new, sales([old.dn, new.dn])])
    cs, _ = plan_changes(inputs([user(U2, "new", display="Alex Moss")], [group(G1, "Sales")], [(G1, U2)]),
                         obs, ANCHOR)
    # The domain drops the deleted member's links itself: no removal could reach the renamed user.
    assert ops(cs) == [("delete", U1), ("rename", U2), ("modify", U2)]


def test_members_the_domain_holds_are_named_by_guid_new_ones_by_their_dn():
    ana = with_guid(observed_user(U1, "ana"), "aaaaaaaa-0000-0000-0000-00000000000a")
    bob = with_guid(observed_user(U2, "bob", display="Bob"), "bbbbbbbb-0000-0000-0000-00000000000b")
    obs = observed([ana, bob, sales([ana.dn])])
    cs, _ = plan_changes(inputs([user(U1, "ana"), user(U2, "bob", display="Bob Renamed"), user(U3, "cid")],
                                [group(G1, "Sales")], [(G1, U2), (G1, U3)]), obs, ANCHOR)
    members = {c.op: c.members for c in cs.changes if c.op in ("add_members", "remove_members")}
    assert members == {"add_members": [f"<GUID={bob.guid}>", f"CN=cid,{C}"], "remove_members": [f"<GUID={ana.guid}>"]}


def test_a_held_manager_leaves_the_reports_manager_as_it_is():
    boss = observed_user(U2, "boss")
    ana = observed_user(U1, "ana")
    ana.attributes["manager"] = [boss.dn]
    report = dict(user(U1, "ana"), manager_anchor=U2)
    for quarantined in ([U2],):
        cs, _ = plan_changes(inputs([report, user(U2, "boss")], quarantined=quarantined), observed([ana, boss]),
                             ANCHOR)
        assert cs.changes == []
    # Colliding (its UPN held by a local object): held as well.
    local = "CN=Boss,CN=Users,DC=corp,DC=example,DC=test"
    cs, collisions = plan_changes(inputs([report, user(U2, "boss")]), observed([ana, boss],
                                  upns={"boss@corp.example.test": local}), ANCHOR)
    assert [c.anchor for c in collisions] == [U2] and cs.changes == []
    # A manager gone from the tenant is cleared.
    cs, _ = plan_changes(inputs([report]), observed([ana, boss]), ANCHOR)
    assert [(c.op, c.values) for c in cs.changes if c.anchor == U1] == [("modify", {"manager": []})]
    # A report created (or recreated: deleted by hand) while its manager is held gets the manager where it sits;
    # with no such manager in the domain, none.
    cs, _ = plan_changes(inputs([report, user(U2, "boss")], quarantined=[U2]), observed([boss]), ANCHOR)
    assert [c.values.get("manager") for c in cs.changes if c.anchor == U1 and c.op == "modify"] == [[boss.dn]]
    cs, _ = plan_changes(inputs([report, user(U2, "boss")], quarantined=[U2]), observed([]), ANCHOR)
    assert [c.op for c in cs.changes if c.anchor == U1] == ["create"]
    assert all("manager" not in c.values for c in cs.changes if c.anchor == U1)


def test_a_quarantined_objects_cn_stays_taken_and_a_newcomer_of_that_name_gets_the_suffix():
    held = observed_user(U2, "ana", display="Ana Lima")
    cs, _ = plan_changes(inputs([user(U2, "ana", display="Ana Lima"), user(U1, "ana2", display="Ana Lima")],
                                quarantined=[U2]), observed([held]), ANCHOR)
    assert [(c.op, c.anchor, c.dn.split(",")[0]) for c in cs.changes] == [("create", U1, "CN=Ana Lima (11111111)")]
    # Held for a duplicate anchor, or out of scope: the same.
    dup = observed([held])
    dup.duplicate_anchors = {U2: [held.dn, f"CN=Ana Copy,{C}"]}
    dup.objects.pop(U2)
    cs, _ = plan_changes(inputs([user(U2, "ana", display="Ana Lima"), user(U1, "ana2", display="Ana Lima")]),
                         dup, ANCHOR)
    assert [c.dn.split(",")[0] for c in cs.changes if c.op == "create"] == ["CN=Ana Lima (11111111)"]
    out = inputs([user(U1, "ana2", display="Ana Lima")])
    out.out_of_scope = {U2}
    cs, _ = plan_changes(out, observed([held]), ANCHOR)
    assert [c.dn.split(",")[0] for c in cs.changes if c.op == "create"] == ["CN=Ana Lima (11111111)"]
    # A deleted one frees its cn.
    cs, _ = plan_changes(inputs([user(U1, "ana2", display="Ana Lima")]), observed([held]), ANCHOR)
    assert [(c.op, c.dn.split(",")[0]) for c in cs.changes] == [("delete", "CN=Ana Lima"), ("create", "CN=Ana Lima")]


def test_quarantining_or_deleting_a_newcomer_renames_nothing():
    ana = observed_user(U2, "ana", display="Ana Lima")
    for tenant in (inputs([user(U2, "ana", display="Ana Lima"), user(U1, "ana2", display="Ana Lima")],
                          quarantined=[U1]),
                   inputs([user(U2, "ana", display="Ana Lima")])):
        cs, _ = plan_changes(tenant, observed([ana]), ANCHOR)
        assert cs.changes == []
    # The suffixed newcomer, once in the domain, keeps its name while the other is quarantined.
    newcomer = observed_user(U1, "ana2", dn_cn="Ana Lima (11111111)", display="Ana Lima")
    cs, _ = plan_changes(inputs([user(U2, "ana", display="Ana Lima"), user(U1, "ana2", display="Ana Lima")],
                                quarantined=[U2]), observed([ana, newcomer]), ANCHOR)
    assert cs.changes == []


def test_a_dn_that_cannot_be_read_is_skipped_and_reported_not_the_plan():
    bad = "CN=broken\\"  # a lone trailing backslash: not a DN
    ana = observed_user(U1, "ana")
    ana.attributes["manager"] = [bad]
    obs = observed([ana, sales([bad, ana.dn])], names={"bob": bad}, upns={"bob@corp.example.test": bad})
    cs, _ = plan_changes(inputs([user(U1, "ana"), user(U2, "bob", upn="bob2@corp.example.test")],
                                [group(G1, "Sales")], [(G1, U1)]), obs, ANCHOR)
    assert obs.unreadable == [bad]
    create = next(c for c in cs.changes if c.op == "create")
    assert create.values["sAMAccountName"] == ["bob-2222"]  # the unreadable object's name stays taken
    assert [(c.op, c.anchor) for c in cs.changes] == [("create", U2)]  # the unreadable values are left alone
    # The unreadable object is ours (marker and U2's anchor, read by observed.py): held, never created again;
    # a group has no UPN to collide on.
    obs = observed(names={"bob": bad}, upns={"bob@corp.example.test": bad})
    obs.unreadable_owned = {U2: bad, G1: bad + "2"}
    cs, collisions = plan_changes(inputs([user(U1, "ana"), user(U2, "bob", upn="bob2@corp.example.test")],
                                         [group(G1, "Sales")], [(G1, U1), (G1, U2)]), obs, ANCHOR)
    assert [(c.op, c.anchor) for c in cs.changes] == [("create", U1)]
    assert sorted((c.anchor, c.attribute, c.local_dn) for c in collisions) == [(U2, "dn", bad), (G1, "dn", bad + "2")]
    assert "DN cannot be read" in collisions[0].reason()
    # A UPN held by such an object is a collision, as with any other holder.
    cs, collisions = plan_changes(inputs([user(U2, "bob")]), observed(upns={"bob@corp.example.test": bad}), ANCHOR)
    assert cs.changes == [] and [(c.attribute, c.local_dn) for c in collisions] == [("userPrincipalName", bad)]
