"""The tenant generator: deterministic, complete, realistic."""

from __future__ import annotations

import collections
import re

import pytest

from emulator.generate import dumps_tenant, fold_ascii, generate_tenant, write_tenant

from .conftest import DEMO_TENANT

USER_ATTRIBUTES = [
    "accountEnabled", "businessPhones", "city", "companyName", "country", "department", "displayName", "employeeId",
    "faxNumber", "givenName", "id", "jobTitle", "lastPasswordChangeDateTime", "mail", "mailNickname", "manager",
    "mobilePhone", "officeLocation", "onPremisesSyncEnabled", "passwordPolicies", "postalCode", "preferredLanguage",
    "proxyAddresses", "state", "streetAddress", "surname", "userPrincipalName",
]
GROUP_ATTRIBUTES = ["id", "displayName", "description", "mail", "mailNickname", "securityEnabled", "mailEnabled",
                    "proxyAddresses", "members"]


@pytest.fixture(scope="module")
def doc():
    return generate_tenant(users=2000, groups=200, seed=99)


def test_same_seed_same_bytes(tmp_path):
    a = write_tenant(tmp_path / "a.json", users=300, groups=30, seed=7)
    b = write_tenant(tmp_path / "b.json", users=300, groups=30, seed=7)
    c = write_tenant(tmp_path / "c.json", users=300, groups=30, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_bundled_demo_tenant_is_the_documented_command_output():
    assert DEMO_TENANT.read_text(encoding="utf-8") == dumps_tenant(generate_tenant(users=60, groups=12, seed=2026))


def test_every_user_has_every_mapped_attribute(doc):
    for user in doc["users"]:
        missing = [a for a in USER_ATTRIBUTES if a not in user]
        assert not missing, (user["id"], missing)
        assert user["onPremisesSyncEnabled"] is None
    assert all(u["givenName"] and u["surname"] and u["displayName"] for u in doc["users"])


def test_every_group_has_its_attributes(doc):
    for group in doc["groups"]:
        assert all(a in group for a in GROUP_ATTRIBUTES), group["id"]
        assert bool(group["mail"]) == group["mailEnabled"]


def test_nicknames_are_unique_ascii_and_make_the_upn(doc):
    domain = doc["tenant"]["domain"]
    nicks = [u["mailNickname"] for u in doc["users"]] + [g["mailNickname"] for g in doc["groups"]]
    assert len(nicks) == len(set(nicks))
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", n) for n in nicks)
    assert all(u["userPrincipalName"] == f"{u['mailNickname']}@{domain}" for u in doc["users"])


def test_ids_are_unique(doc):
    ids = [o["id"] for o in doc["users"] + doc["groups"]]
    assert len(ids) == len(set(ids))


def test_duplicate_display_names_exist(doc):
    users = collections.Counter(u["displayName"] for u in doc["users"])
    groups = collections.Counter(g["displayName"] for g in doc["groups"])
    assert max(users.values()) >= 2
    assert max(groups.values()) >= 2


def test_non_ascii_names_of_many_scripts(doc):
    text = " ".join(u["displayName"] for u in doc["users"])
    for ch in "éøßñŁ":
        assert ch in text, ch
    assert re.search(r"[\u4e00-\u9fff]", text), "Chinese"
    assert re.search(r"[\u0600-\u06ff]", text), "Arabic"
    assert re.search(r"[\u0370-\u03ff]", text), "Greek"


def test_demo_tenant_has_duplicates_disabled_and_non_ascii():
    demo = generate_tenant(users=60, groups=12, seed=2026)
    names = collections.Counter(u["displayName"] for u in demo["users"])
    assert max(names.values()) >= 2
    assert any(not u["accountEnabled"] for u in demo["users"])
    assert any(any(ord(c) > 127 for c in u["displayName"]) for u in demo["users"])
    assert any(m["@odata.type"] == "#microsoft.graph.group" for g in demo["groups"] for m in g["members"])


def test_about_five_percent_disabled_and_password_policies(doc):
    disabled = sum(1 for u in doc["users"] if not u["accountEnabled"])
    assert 0.03 * 2000 <= disabled <= 0.07 * 2000
    assert any("DisablePasswordExpiration" in (u["passwordPolicies"] or "") for u in doc["users"])
    assert any(u["passwordPolicies"] is None for u in doc["users"])


def test_managers_are_other_existing_users_for_most(doc):
    ids = {u["id"] for u in doc["users"]}
    with_manager = [u for u in doc["users"] if u["manager"]]
    assert len(with_manager) > 0.8 * len(doc["users"])
    assert all(u["manager"]["id"] in ids and u["manager"]["id"] != u["id"] for u in with_manager)


def test_members_exist_and_nested_groups_are_acyclic(doc):
    users = {u["id"] for u in doc["users"]}
    groups = {g["id"]: g for g in doc["groups"]}
    children = {}
    for g in doc["groups"]:
        for m in g["members"]:
            if m["@odata.type"] == "#microsoft.graph.user":
                assert m["id"] in users
            else:
                assert m["@odata.type"] == "#microsoft.graph.group" and m["id"] in groups
        children[g["id"]] = [m["id"] for m in g["members"] if m["@odata.type"] == "#microsoft.graph.group"]
    assert sum(len(c) for c in children.values()) > 0
    state: dict[str, int] = {}

    def visit(gid):
        state[gid] = 1
        for child in children[gid]:
            assert state.get(child) != 1, "cycle"
            if child not in state:
                visit(child)
        state[gid] = 2

    for gid in children:
        if gid not in state:
            visit(gid)


def test_fold_ascii():
    assert fold_ascii("Søren Łukasiewicz Strauß Iñaki Işıl") == "Soren Lukasiewicz Strauss Inaki Isil"


def test_memberships_resizes_the_team_groups_to_the_total_and_keeps_the_all_employees_group():
    for users, groups, memberships in [(2000, 200, 9000), (2000, 200, 30000), (300, 30, 100)]:
        doc = generate_tenant(users=users, groups=groups, seed=11, memberships=memberships)
        sizes = [len(g["members"]) for g in doc["groups"]]
        assert sizes[0] == users  # "All Employees"
        drawn = generate_tenant(users=users, groups=groups, seed=11)
        assert doc["users"] == drawn["users"]
        assert [len(g["members"]) for g in drawn["groups"][:2]] == sizes[:2]
        fixed_only = memberships < sum(sizes[:2])
        if not fixed_only:
            assert sum(sizes) == memberships
        ids = [m["id"] for g in doc["groups"] for m in g["members"]]
        per_group = [[m["id"] for m in g["members"]] for g in doc["groups"]]
        assert all(len(set(g)) == len(g) for g in per_group), "a member twice in one group"
        assert len(ids) == sum(sizes)
    assert generate_tenant(300, 30, seed=3, memberships=4000) == generate_tenant(300, 30, seed=3, memberships=4000)
