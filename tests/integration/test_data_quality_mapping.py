"""The mapping file against a real domain: its schema decides what a mapping may write, and changing
the file changes what the domain holds after the next run, with no code change."""

from __future__ import annotations

import pytest

from domain_sync.config import DEFAULT_MAPPING_FILE
from domain_sync.errors import PermanentError
from tests.fixtures.sync_env import by_sam as entries_by_sam
from tests.fixtures.sync_env import first, tenant_group, tenant_user

pytestmark = pytest.mark.integration

COST_CENTER = "extension_0123456789abcdef0123456789abcdef_costCenter"


def write_mapping(sync_env, name: str, users: dict[str, str], groups: dict[str, str] | None = None):
    """A mapping file: the default one plus `users` / `groups` entries (target: source)."""
    lines = DEFAULT_MAPPING_FILE.read_text(encoding="utf-8").splitlines()
    at = lines.index("groups:")
    extra_users = [f"    {target}: {{source: {source}}}" for target, source in users.items()]
    extra_groups = [f"    {target}: {{source: {source}}}" for target, source in (groups or {}).items()]
    path = sync_env.path / name
    path.write_text("\n".join(lines[:at] + extra_users + lines[at:] + extra_groups) + "\n", encoding="utf-8")
    sync_env.set(mapping_file=path)
    return path


def by_sam(entries):
    """{sAMAccountName: attributes} of synced entries."""
    return {sam: entry for sam, (_dn, entry) in entries_by_sam(entries).items()}


def value(entry, name):
    return first(entry.get(name.lower()))


def test_changing_the_mapping_file_changes_the_domain_on_the_next_run(sync_env):
    ana = tenant_user("ana", "Ana Lima", department="Finance", jobTitle="Analyst", **{COST_CENTER: "CC-1001"})
    bob = tenant_user("bob", "Bob Stone", department="Sales", jobTitle="Seller", **{COST_CENTER: "CC-2002"})
    emu = sync_env.start_tenant({"users": [ana, bob], "groups": [tenant_group("Team", [ana, bob])]})
    sync_env.set(initial_password="none")

    # The extension attribute reaches the domain only through the delta query's $select.
    write_mapping(sync_env, "mapping-1.yaml", {"info": "department", "employeeNumber": COST_CENTER})
    sync_env.run()
    users = by_sam(sync_env.synced_entries(["sAMAccountName", "info", "employeeNumber", "title"]))
    assert (value(users["ana"], "info"), value(users["ana"], "employeeNumber")) == ("Finance", "CC-1001")
    assert (value(users["bob"], "info"), value(users["bob"], "employeeNumber")) == ("Sales", "CC-2002")

    # Swap the sources and stop mapping jobTitle: no code change, the next (delta) run follows.
    mapping = write_mapping(sync_env, "mapping-2.yaml", {"info": COST_CENTER, "employeeNumber": "department"})
    mapping.write_text(mapping.read_text().replace("    title: {source: jobTitle}\n", ""))
    result = sync_env.run()
    assert result["extract_users"]["full_read"] is False
    users = by_sam(sync_env.synced_entries(["sAMAccountName", "info", "employeeNumber", "title"]))
    assert (value(users["ana"], "info"), value(users["ana"], "employeeNumber")) == ("CC-1001", "Finance")
    assert value(users["ana"], "title") == "Analyst", "an unmapped attribute is left as it is"

    # A source the saved delta link does not track: extract reads every user again by itself.
    write_mapping(sync_env, "mapping-3.yaml", {"info": COST_CENTER, "employeeNumber": "department",
                                               "employeeType": "employeeType"})
    emu.admin.update_user(ana["id"], {"employeeType": "Contractor"})
    assert sync_env.run()["extract_users"]["full_read"] is True
    assert value(by_sam(sync_env.synced_entries(["sAMAccountName", "employeeType"]))["ana"],
                 "employeeType") == "Contractor"


@pytest.mark.parametrize("users, groups, message", [
    ({"extensionAttribute1": "department"}, {}, "users.attributes.extensionAttribute1: the domain's schema has no "
                                                "attribute 'extensionAttribute1'"),
    ({}, {"employeeNumber": "description"}, "groups.attributes.employeeNumber: 'employeeNumber' is not allowed on "
                                            "group objects"),
    ({"memberOf": "department"}, {}, "'memberOf' has syntax DN"),
], ids=["not-in-schema", "not-allowed-on-groups", "dn-syntax"])
def test_a_mapping_the_domains_schema_cannot_hold_stops_before_any_write(sync_env, users, groups, message):
    ana = tenant_user("ana", "Ana Lima", department="Finance")
    sync_env.start_tenant({"users": [ana], "groups": [tenant_group("Team", [ana], description="x")]})
    write_mapping(sync_env, "bad.yaml", users, groups)
    usn = sync_env.highest_usn()
    with pytest.raises(PermanentError) as err:
        sync_env.run()
    assert message in str(err.value)
    assert sync_env.highest_usn() == usn, "the domain recorded a write"
