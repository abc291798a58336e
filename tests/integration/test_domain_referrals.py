"""Referral handling against the real Samba DC: connections do not chase referrals, and the continuation
reference Samba adds to every subtree search from the domain root is passed over, not an error."""

from __future__ import annotations

import pytest

from domain_sync.domain import DomainReferral, check_referrals, connect, endpoint_from_connection
from tests.fixtures.sync_env import _Conn

pytestmark = pytest.mark.integration


def test_a_whole_domain_search_on_samba_passes_the_referral_check(local_domain):
    conn = connect(endpoint_from_connection(_Conn(local_domain.connection()), "ldap_domain"))
    try:
        assert conn.auto_referrals is False and conn.server.allowed_referral_hosts == []
        assert conn.search(local_domain.base_dn, "(objectClass=organizationalUnit)", attributes=["ou"])
        references = [e for e in conn.response if e["type"] == "searchResRef"]
        assert any("CN=Configuration," in url for e in references for url in e["uri"])
        check_referrals(conn, local_domain.base_dn)

        entries = list(conn.extend.standard.paged_search(local_domain.base_dn, "(objectClass=group)",
                                                         attributes=["cn"], paged_size=5, generator=True))
        assert any(e["type"] == "searchResRef" for e in entries)
        for entry in entries:
            check_referrals(entry, local_domain.base_dn)
        check_referrals(conn.result, local_domain.base_dn)

        # A continuation reference to anything but the forest's own partitions is an error.
        with pytest.raises(DomainReferral, match="DC=emea"):
            check_referrals([*entries, {"type": "searchResRef", "uri": [
                f"ldaps://emea.{local_domain.realm.lower()}/DC=emea,{local_domain.base_dn}"]}], local_domain.base_dn)
    finally:
        conn.unbind()
