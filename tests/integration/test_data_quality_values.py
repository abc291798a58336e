"""Over-long and odd values reach Samba as the documented rule says (cut, or dropped with a warning),
never as a failed write."""

from __future__ import annotations

import json

import pytest

from domain_sync.runs import RunFolder
from tests.fixtures.sync_env import tenant_user
from tests.integration.test_data_quality_mapping import by_sam, value, write_mapping

pytestmark = pytest.mark.integration


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_over_long_and_odd_values_load_without_a_failed_write(sync_env):
    odd = tenant_user(
        "odd", "D" * 300,
        employeeId="E" * 40,
        businessPhones=["+47 " + "1" * 80, "+47 2"],
        jobTitle="T" * 127 + "😀" + "more",
        mail="m" * 300 + "@contoso.example",
        country="C" * 200,
        department="Fin\x00ance\x07",
        city="   ",
        postalCode="1234567890" * 5,
        streetAddress="Line 1\nLine 2",
        givenName="\u202eنور",
        surname="😀" * 40,
        employeeType="Contractor",
        proxyAddresses=["SMTP:odd@contoso.example", "smtp:ODD@contoso.example", "smtp:" + "p" * 1200 + "@x.test"],
    )
    emoji = tenant_user("emoji", "Emoji", employeeId="😀" * 9, employeeType=" 4711 ")
    sync_env.start_tenant({"users": [odd, emoji], "groups": []})
    sync_env.set(initial_password="none")
    write_mapping(sync_env, "mapping.yaml", {"uidNumber": "employeeType"})  # an integer attribute

    result = sync_env.run()
    assert result["apply"]["statuses"] == {"applied": result["apply"]["planned"]}
    assert result["validate"]["quarantined"] == {"user": 0, "group": 0}

    users = by_sam(sync_env.synced_entries())
    o, e = users["odd"], users["emoji"]
    assert value(o, "employeeID") == "E" * 16 and value(e, "employeeID") == "😀" * 8
    assert value(o, "telephoneNumber") == "+47 " + "1" * 60
    assert value(o, "title") == "T" * 127, "a cut never splits a surrogate pair"
    assert value(o, "mail") is None, "mail is marked too_long: drop"
    assert value(o, "co") == "C" * 128 and value(o, "postalCode") == ("1234567890" * 5)[:40]
    assert value(o, "department") == "Finance" and value(o, "l") is None
    assert value(o, "streetAddress") == "Line 1\nLine 2" and value(o, "givenName") == "\u202eنور"
    assert value(o, "sn") == "😀" * 32
    assert utf16_units(value(o, "displayName")) == 256 and utf16_units(value(o, "cn")) <= 64
    assert o["proxyaddresses"] in (["SMTP:odd@contoso.example"], "SMTP:odd@contoso.example")
    assert value(o, "uidNumber") is None and int(value(e, "uidNumber")) == 4711

    fixes = result["transform"]["values_fixed"]["user"]
    assert fixes["cut:employeeID"] == 2 and fixes["dropped:mail"] == 1 and fixes["dropped:uidNumber"] == 1
    assert fixes["dropped:proxyAddresses"] == 1
    listed = json.loads(RunFolder(sync_env.settings.runs_dir, "manual__test-1").value_fixes.read_text())
    assert listed["total"] == sum(fixes.values())
    assert "E" * 17 not in json.dumps(listed), "the file shows value shapes, never values"

    second = sync_env.run()
    assert second["plan"]["changes"] == 0, "fitted values are stable: the next run writes nothing"
