"""A tenant with every hard case loads into Samba with no LDAP error, checked by reading the domain back."""

from __future__ import annotations

import pytest

from domain_sync.domain import decode_anchor
from domain_sync.naming import is_valid_account_name
from tests.fixtures.sync_env import tenant_group, tenant_user
from tests.integration.test_data_quality_mapping import value

pytestmark = pytest.mark.integration

HARD_NAMES = [
    ("dup", "Dup One"), ("dup", "Dup Two"), ("dup", "Dup Three"),                  # one mailNickname, thrice
    ("a" * 64, "N" * 64), ("long.emoji", "😀" * 64), ("x" * 63 + "é", "Ü" * 63 + " ."),  # 64 characters
    ("...", "..."), ("!!!", "#,+;=\"<>\\"), ("---", "  -- "), ("#hash", "#hash"),    # only punctuation
    ("smile", "😀 Smile 🎉"), ("family", "👩\u200d👩\u200d👧\u200d👦"),              # emoji, a ZWJ sequence
    ("maryam", "مريم العربية"), ("hebrew", "\u200fעברית\u200f"), ("bidi", "\u202eevil.exe"),  # right-to-left
    ("twin", "Local Twin"), ("Administrator", "Administrator"), ("krbtgt", "krbtgt"),  # local objects' names
    ("trailing.", "Trailing."), ("lead", " Lead Space"), ("Ana", "Ana Lima"), ("ana2", "Ana Lima"),
]


def test_a_tenant_with_every_hard_case_loads_with_no_ldap_error(sync_env):
    users = [tenant_user(nick, display, userPrincipalName=f"user{i}@contoso.example") for i, (nick, display)
             in enumerate(HARD_NAMES)]
    held = tenant_user("held", "Held UPN", userPrincipalName="held@contoso.example")
    groups = [tenant_group("Domain Admins", users[:2]), tenant_group("Administrators", users[2:4]),
              tenant_group("😀🎉", users[10:12]), tenant_group("#,+;=", users[6:8]),
              tenant_group("مجموعة", users[12:15]), tenant_group("Local Twin", [users[15]])]
    sync_env.start_tenant({"users": users + [held], "groups": groups})
    sync_env.set(initial_password="none")

    # Local objects in the container holding a cn, a sAMAccountName and a userPrincipalName the tenant has.
    conn = sync_env.ldap()
    assert conn.add(sync_env.container_dn, ["organizationalUnit"], {"ou": sync_env.container.split("=", 1)[1]})
    assert conn.add(f"CN=Local Twin,{sync_env.container_dn}", ["top", "person", "organizationalPerson", "user"],
                    {"sAMAccountName": "twin", "userPrincipalName": "held@contoso.example",
                     "userAccountControl": "514"}), conn.result
    conn.unbind()

    result = sync_env.run()
    assert result["apply"]["statuses"] == {"applied": result["apply"]["planned"]}, result["apply"].get("failed")
    assert result["apply"]["failed"] == []
    assert result["validate"]["quarantined"] == {"user": 0, "group": 0}
    assert result["plan"]["collisions"] >= 1  # the UPN held by the local object: reported, not written

    entries = sync_env.synced_entries(["cn", "displayName", "sAMAccountName", "mS-DS-ConsistencyGuid",
                                       "userPrincipalName"])
    by_anchor = {}
    for dn, e in entries.items():
        anchor = decode_anchor("mS-DS-ConsistencyGuid", e.get("ms-ds-consistencyguid"))
        if anchor is not None:
            by_anchor[anchor] = (dn, e)
    expected = users + groups
    assert set(by_anchor) == {o["id"] for o in expected}, "every object but the UPN collision is in the domain"
    for o in expected:
        dn, e = by_anchor[o["id"]]
        assert value(e, "displayName") == o["displayName"]
        cn = value(e, "cn")
        assert 0 < len(cn.encode("utf-16-le")) // 2 <= 64
        assert is_valid_account_name(value(e, "sAMAccountName"))
    names = [value(e, "sAMAccountName").lower() for e in entries.values()]
    assert len(names) == len(set(names))
    assert {"administrator", "krbtgt"}.isdisjoint(n for dn, e in by_anchor.values()
                                                  for n in [value(e, "sAMAccountName").lower()])
    twin = [value(e, "cn") for dn, e in by_anchor.values() if value(e, "displayName") == "Local Twin"]
    assert twin and all(c != "Local Twin" for c in twin), "the local object keeps its cn"

    again = sync_env.run()
    assert again["plan"]["changes"] == 0, "names and values are stable: a second run writes nothing"
