"""Only owned objects are ours: the anchor alone (as Entra Connect writes it on every object of a hybrid
domain) is not ownership, and nothing outside the search base is touched."""

from __future__ import annotations

import uuid

import pytest

from domain_sync.errors import PermanentError
from tests.fixtures.sync_env import by_sam, delete_subtree, tenant_group, tenant_user, usn_changed

pytestmark = pytest.mark.integration

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
ANCHOR = "mS-DS-ConsistencyGuid"


def test_an_object_with_the_anchor_but_without_the_marker_is_never_touched(sync_env):
    ana = tenant_user("ana", "Ana Lima", department="Sales")
    hybrid = f"CN=Ana On-Prem,{sync_env.container_dn}"
    conn = sync_env.ldap()
    try:
        assert conn.add(sync_env.container_dn, ["organizationalUnit"], {}), conn.result
        # What Entra Connect leaves on an on-premises user: mS-DS-ConsistencyGuid with a GUID's bytes.
        assert conn.add(hybrid, USER_CLASSES, {"sAMAccountName": "ana.onprem", "userAccountControl": "514",
                                               ANCHOR: uuid.UUID(ana["id"]).bytes_le}), conn.result
        before = usn_changed(conn, hybrid)
        sync_env.start_tenant({"users": [ana], "groups": []})
        first = sync_env.run()
        again = sync_env.run(full_resync=True)
        assert usn_changed(conn, hybrid) == before, "an object the sync does not own was written"
    finally:
        conn.unbind()
    assert first["plan"]["counts"].get("user.delete", 0) == 0 and again["plan"]["changes"] == 0
    owned = by_sam(sync_env.synced_entries(["sAMAccountName", "extensionName"]))
    assert owned["ana"][1]["extensionname"] and owned["ana.onprem"][1].get("extensionname") in (None, [])


def test_owned_objects_outside_the_search_base_are_not_modified_moved_or_deleted(sync_env):
    ana, bob = tenant_user("ana", "Ana Lima"), tenant_user("bob", "Bob Stone")
    emu = sync_env.start_tenant({"users": [ana, bob], "groups": []})
    sync_env.run()
    owned = by_sam(sync_env.synced_entries(["sAMAccountName", ANCHOR, "extensionName"]))
    outside = f"OU=elsewhere-{uuid.uuid4().hex[:8]},{sync_env.domain.base_dn}"
    conn = sync_env.ldap()
    try:
        assert conn.add(outside, ["organizationalUnit"], {}), conn.result
        # A copy of bob's object (anchor and marker) outside the search base: not the sync's to touch.
        copy = f"CN=Bob Copy,{outside}"
        assert conn.add(copy, USER_CLASSES, {"sAMAccountName": "bob.copy", "userAccountControl": "514",
                                             ANCHOR: uuid.UUID(bob["id"]).bytes_le,
                                             "extensionName": owned["bob"][1]["extensionname"]}), conn.result
        before = usn_changed(conn, copy)
        emu.admin.delete_user(bob["id"], permanent=True)
        emu.admin.update_user(ana["id"], {"displayName": "Ana Berg"})
        result = sync_env.run()
        assert usn_changed(conn, copy) == before
        assert result["apply"]["writes"].get("user.delete") == 1  # bob's object in the container only
    finally:
        delete_subtree(conn, outside)
        conn.unbind()


@pytest.mark.parametrize(("changed", "named"), [
    ("owner_marker", "DOMAIN_SYNC_OWNER_MARKER"),
    ("search_base", "DOMAIN_SYNC_SEARCH_BASE"),
])
def test_a_changed_ownership_or_search_base_setting_blocks_the_creates_that_would_duplicate_every_object(
        sync_env, changed, named):
    users = [tenant_user(f"dup{i}", f"Dup User {i}") for i in range(3)]
    sync_env.start_tenant({"users": users, "groups": [tenant_group("Dup Team", users)]})
    sync_env.run()
    synced = set(sync_env.synced_entries(["cn"]))
    sync_env.set(create_share_min_objects=1)
    if changed == "owner_marker":
        sync_env.set(owner_marker="domain-sync:another-tenant")
    else:
        elsewhere = f"OU=elsewhere-{uuid.uuid4().hex[:8]}"
        sync_env.set(search_base=elsewhere, container=elsewhere)
    usn = sync_env.highest_usn()
    preview = sync_env.run(dry_run=True)["plan"]
    assert preview["status"] == "blocked"
    if changed == "owner_marker":
        # The users' UPNs are held by the objects no longer recognised (collisions); the group would be a duplicate.
        assert preview["counts"].get("group.create") == 1 and preview["unmarked_in_domain"] == 4
        stopped = f"tenant objects in the domain .* would be created.*{named}"
    else:
        # Every object of ours is now outside the search base: each is held (nothing created), and the plan stops.
        assert not [k for k in preview["counts"] if not k.startswith("container.")]
        assert preview["unmarked_in_domain"] == 0 and preview["collisions"] == 4
        stopped = f"4 objects with this sync's marker are outside the search base .*{named}"
    assert any(named in reason for reason in preview["blocked_reasons"])
    with pytest.raises(PermanentError, match=stopped):
        sync_env.run()
    assert sync_env.highest_usn() == usn, "a blocked plan wrote"
    assert set(sync_env.synced_entries(["cn"])) == synced
