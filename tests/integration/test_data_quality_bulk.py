"""Malformed tenants against Samba: a few bad users are quarantined and the rest load; many bad users stop
the run before any write, with a message that says why."""

from __future__ import annotations

import json

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.errors import PermanentError
from domain_sync.runs import RunFolder
from tests.fixtures.sync_env import tenant_group, tenant_user

pytestmark = pytest.mark.integration

MALFORMED = [  # ways a user can be malformed; {k} keeps each one unique in the tenant
    {"userPrincipalName": None},                     # missing
    {"userPrincipalName": "no-at-sign{k}.contoso.example"},
    {"userPrincipalName": "two{k}@@contoso.example"},
    {"userPrincipalName": "sp ace{k}@contoso.example"},
    {"userPrincipalName": "trailing{k}@"},
    {"id": "not-a-guid-{k}"},                        # an object id Graph would never give
]


def tenant(size: int, bad: int):
    users = [tenant_user(f"user{n:03d}", f"User {n:03d}") for n in range(size)]
    broken = []
    for k in range(bad):
        users[k * (size // bad)].update({name: v if v is None else v.format(k=k)
                                         for name, v in MALFORMED[k % len(MALFORMED)].items()})
        broken.append(users[k * (size // bad)]["id"])
    for u in users:
        if u.get("userPrincipalName") is None:
            del u["userPrincipalName"]
    return {"users": users, "groups": [tenant_group("Everyone", users)]}, set(broken)


def test_two_percent_malformed_loads_the_rest_and_reports_exactly_those(sync_env):
    doc, broken = tenant(150, 3)
    sync_env.start_tenant(doc)
    sync_env.set(initial_password="none")
    result = sync_env.run()

    assert result["validate"]["quarantined"] == {"user": 3, "group": 0}
    run = RunFolder(sync_env.settings.runs_dir, "manual__test-1")
    quarantine = json.loads(run.quarantine.read_text())
    assert {q["anchor"] for q in quarantine} == broken
    assert result["report"]["quarantined"] == 3
    alerts = [a for a in read_alerts(sync_env.settings) if a["kind"] == "objects_quarantined"]
    assert alerts and "3 objects quarantined by validation" in alerts[-1]["message"]
    report = run.validation_report_text.read_text()
    assert "3 of 150 users" in report

    entries = sync_env.synced_entries(["sAMAccountName", "member"])
    users = [e for e in entries.values() if "user" in str(e.get("samaccountname"))]
    assert len(users) == 147
    group = next(e for e in entries.values() if e.get("member"))
    assert len(group["member"]) == 147, "memberships of quarantined users are left out"
    assert result["validate"]["memberships_dropped"]["to_quarantined_object"] == 3


def test_twenty_percent_malformed_loads_nothing_and_says_why(sync_env):
    doc, _ = tenant(150, 30)
    sync_env.start_tenant(doc)
    sync_env.set(initial_password="none")
    usn = sync_env.highest_usn()
    with pytest.raises(PermanentError) as err:
        sync_env.run()
    message = str(err.value)
    assert message.startswith("validation stopped the run before any write")
    assert "30 of 150 users (20.0%) fail validation, more than the limit of 5%" in message
    assert "userPrincipalName" in message
    assert sync_env.highest_usn() == usn and sync_env.synced_entries() == {}
