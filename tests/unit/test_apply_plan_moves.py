"""Planning moves and name collisions (no LDAP; the observed side is built)."""

from domain_sync.plan.changeset import UF_NORMAL_ACCOUNT, plan_changes
from domain_sync.plan.observed import ObservedObject
from tests.unit.test_changeset import ANCHOR, G1, U1, U2, C, group, inputs, observed, user

OLD = "OU=Old,DC=corp,DC=example,DC=test"


def old_user(anchor, name, manager=None):
    attributes = {"samaccountname": [name], "userprincipalname": [f"{name}@corp.example.test"],
                  "displayname": [name], "useraccountcontrol": [str(UF_NORMAL_ACCOUNT)]}
    if manager:
        attributes["manager"] = [manager]
    return ObservedObject(anchor, "user", f"CN={name},{OLD}", attributes)


def test_synced_objects_found_in_another_container_are_moved_not_created():
    bob = user(U2, "bob")
    bob["manager_anchor"] = U1
    team = ObservedObject(G1, "group", f"CN=Team,{OLD}", {"samaccountname": ["Team"], "displayname": ["Team"],
                                                           "grouptype": [str(-2147483646)]},
                          members=[f"CN=ana,{OLD}", f"CN=bob,{OLD}"])
    obs = observed([old_user(U1, "ana"), old_user(U2, "bob", manager=f"CN=ana,{OLD}"), team])
    cs, _ = plan_changes(inputs([user(U1, "ana"), bob], [group(G1, "Team")], [(G1, U1), (G1, U2)]), obs, ANCHOR)
    # The manager and the members move along (the domain keeps DN references by object): renames only.
    assert [(c.op, c.anchor, c.new_dn) for c in cs.changes] == [
        ("rename", U1, f"CN=ana,{C}"), ("rename", U2, f"CN=bob,{C}"), ("rename", G1, f"CN=Team,{C}")]


def test_a_manager_that_really_changes_is_still_written():
    bob = user(U2, "bob")
    bob["manager_anchor"] = U1
    obs = observed([old_user(U1, "ana"), old_user(U2, "bob", manager="CN=Someone Else,CN=Users,DC=corp")])
    cs, _ = plan_changes(inputs([user(U1, "ana"), bob]), obs, ANCHOR)
    assert ("modify", U2, {"manager": [f"CN=ana,{C}"]}) in [(c.op, c.anchor, c.values) for c in cs.changes]


def test_an_account_name_collision_says_what_the_tenant_object_gets_instead():
    local = "CN=ana,CN=Users,DC=corp,DC=example,DC=test"
    cs, collisions = plan_changes(inputs([user(U1, "ana", upn="x@corp.example.test")]),
                                  observed(names={"ana": local}), ANCHOR)
    assert "gets 'ana-1111' instead" in collisions[0].reason() and "quarantined" not in collisions[0].reason()
    assert [c.op for c in cs.changes] == ["create"]
