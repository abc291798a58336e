"""Names the domain controller tells apart and the sync does not: a cn the DC's own case rules match against
another object's is taken, and so is one the sync's comparison keys (domain_sync.dn.normalize_dn: Unicode case
folding) match, which the DC may not: Samba does not fold Georgian Mtavruli to Mkhedruli, nor 'ß' to 'ss'.

An incremental plan asks the DC which of the cns it gives are held; a full plan reads the container. Both must
give the same cns, or the domain ends up holding two objects whose DNs the sync takes for one (the member
values of one read as the other's, a membership added again on every run).
"""

from __future__ import annotations

import pytest

from domain_sync.dn import child_dn, guid_from_bytes, rdn_value
from tests.fixtures.convergence import idle_sync, sync
from tests.fixtures.sync_env import first, tenant_group, tenant_user

pytestmark = pytest.mark.integration

# (the cn one object holds, the cn another one asks for): equal under Python's casefold, apart under Samba's rules
FOLDED_PAIRS = [
    ("Nino ნინო", "Nino ᲜᲘᲜᲝ"),  # Georgian Mkhedruli and its Mtavruli capitals (Unicode 11)
    ("Straße Ana", "STRASSE ANA"),  # full case folding: ß is ss
]


def _cns(env) -> dict[str, str]:
    """{anchor: cn} of the synced users under the test's container."""
    settings = env.settings
    conn = env.ldap()
    try:
        conn.search(env.container_dn, "(objectClass=user)", attributes=["cn", settings.anchor_attribute])
        out = {}
        for entry in conn.response:
            raw = entry["raw_attributes"].get(settings.anchor_attribute)
            if raw:
                out[guid_from_bytes(raw[0])] = rdn_value(entry["dn"])
        return out
    finally:
        conn.unbind()


@pytest.mark.parametrize("held, wanted", FOLDED_PAIRS)
def test_a_rename_into_a_settled_objects_folded_cn_gets_the_suffix_in_both_plan_modes(sync_env, held, wanted):
    sync_env.set(plan_mode="incremental")
    ana, bob, carl = tenant_user("ana", held), tenant_user("bob", "Bob Other"), tenant_user("carl", "Carl")
    team = tenant_group("Team", [bob, carl])
    emu = sync_env.start_tenant({"users": [ana, bob, carl], "groups": [team]})
    _, problems = sync(sync_env, "sync-1", compare_plans=True)
    assert not problems, problems
    _, problems = idle_sync(sync_env, "sync-2", compare_plans=True)  # the objects' DNs are in the index now
    assert not problems, problems

    emu.admin.update_user(bob["id"], {"displayName": wanted})
    results, problems = sync(sync_env, "sync-3", compare_plans=True)
    assert not problems, problems
    # Ana is not read by the incremental plan (unchanged, in no group): it knows her cn from its index alone.
    assert results["plan"]["plan_mode"]["mode"] == "incremental"
    assert results["plan"]["plan_mode"]["changed_set"] == 1, results["plan"]["plan_mode"]
    cns = _cns(sync_env)
    assert cns[ana["id"]] == held
    assert cns[bob["id"]] != wanted and cns[bob["id"]].startswith(wanted + " ("), cns
    _, problems = idle_sync(sync_env, "sync-4", compare_plans=True)
    assert not problems, problems


def _add_local_user(env, cn: str) -> None:
    conn = env.ldap()
    try:
        if not conn.search(env.container_dn, "(objectClass=*)", search_scope="BASE"):
            assert conn.add(env.container_dn, ["top", "organizationalUnit"]), conn.result
        assert conn.add(child_dn("CN", cn, env.container_dn), ["top", "person", "organizationalPerson", "user"],
                        {"sAMAccountName": "local-folded"}), conn.result
    finally:
        conn.unbind()


@pytest.mark.parametrize("local_made", ["before the first sync", "between runs"])
@pytest.mark.parametrize("held, wanted", FOLDED_PAIRS)
def test_a_new_object_whose_cn_folds_to_a_local_objects_gets_the_suffix_in_both_plan_modes(sync_env, held, wanted,
                                                                                           local_made):
    """Before the first sync, the local object is in the first (full) plan's read of the container, which the
    domain index keeps; made between runs, it is among the domain's changes the next incremental plan reads."""
    sync_env.set(plan_mode="incremental")
    ana = tenant_user("ana", "Ana First")
    if local_made == "before the first sync":
        _add_local_user(sync_env, held)
    emu = sync_env.start_tenant({"users": [ana], "groups": []})
    _, problems = sync(sync_env, "sync-1", compare_plans=True)
    assert not problems, problems
    _, problems = idle_sync(sync_env, "sync-2", compare_plans=True)
    assert not problems, problems
    if local_made == "between runs":
        _add_local_user(sync_env, held)

    new = tenant_user("newcomer", wanted)
    emu.admin.create_user(new)
    results, problems = sync(sync_env, "sync-3", compare_plans=True)
    assert not problems, problems
    assert results["plan"]["plan_mode"]["mode"] == "incremental"
    cns = _cns(sync_env)
    assert cns[new["id"]].startswith(wanted + " ("), cns
    entries = {rdn_value(dn): e for dn, e in sync_env.synced_entries(["sAMAccountName"]).items()}
    assert first(entries[held]["samaccountname"]) == "local-folded"  # the local object, untouched
    _, problems = idle_sync(sync_env, "sync-4", compare_plans=True)
    assert not problems, problems
