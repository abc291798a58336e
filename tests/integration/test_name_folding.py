"""Names the domain controller tells apart and the sync does not: a cn the DC's own case rules match against
another object's is taken, and so is one the sync's comparison key (domain_sync.naming.name_key: names as Windows
AD compares them, without case, accents, width and kana type) matches, which the DC may not: Samba does not fold
Georgian Mtavruli to Mkhedruli, nor 'ß' to 'ss', and tells 'Müller' from 'Muller', where Windows AD refuses the
second as a name already in use.

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

# (the cn one object holds, the cn another one asks for): one name to Windows AD, two to Samba
FOLDED_PAIRS = [
    ("Nino ნინო", "Nino ᲜᲘᲜᲝ"),  # Georgian Mkhedruli and its Mtavruli capitals (Unicode 11)
    ("Straße Ana", "STRASSE ANA"),  # full case folding: ß is ss
    ("Müller Zoë", "Muller Zoe"),  # accents (Microsoft KB 938447)
    ("ｱｷﾗ Ｌｉｍａ", "あきら lima"),  # half-width katakana, full-width Latin: width and kana type
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


def _add_local_user(env, cn: str, **attributes: str) -> None:
    conn = env.ldap()
    try:
        if not conn.search(env.container_dn, "(objectClass=*)", search_scope="BASE"):
            assert conn.add(env.container_dn, ["top", "organizationalUnit"]), conn.result
        assert conn.add(child_dn("CN", cn, env.container_dn), ["top", "person", "organizationalPerson", "user"],
                        {"sAMAccountName": "local-folded"} | attributes), conn.result
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


@pytest.mark.parametrize("held, local", FOLDED_PAIRS[2:])
def test_a_local_object_made_beside_a_synced_one_of_the_same_name_keeps_it_and_the_synced_one_is_suffixed(
        sync_env, held, local):
    """Samba lets a local object take a name a synced object holds under Windows AD's comparison (an admin
    makes "Müller Zoë" beside the synced "Muller Zoe"); Windows AD would not. Local objects are never touched,
    so the synced one gets its suffix, in both plan modes: the incremental plan takes it as changed."""
    sync_env.set(plan_mode="incremental")
    ana, bob = tenant_user("ana", held), tenant_user("bob", "Bob Other")
    sync_env.start_tenant({"users": [ana, bob], "groups": [tenant_group("Team", [ana, bob])]})
    _, problems = sync(sync_env, "sync-1", compare_plans=True)
    assert not problems, problems
    _, problems = idle_sync(sync_env, "sync-2", compare_plans=True)  # the objects' DNs are in the index now
    assert not problems, problems
    _add_local_user(sync_env, local)

    results, problems = sync(sync_env, "sync-3", compare_plans=True)
    assert not problems, problems
    assert results["plan"]["plan_mode"]["mode"] == "incremental"
    assert results["plan"]["plan_mode"]["changed_by_reason"] == {"cn_taken_by_local": 1}, results["plan"]
    cns = _cns(sync_env)
    assert cns[ana["id"]].startswith(held + " ("), cns
    assert cns[bob["id"]] == "Bob Other"
    entries = {rdn_value(dn): e for dn, e in sync_env.synced_entries(["sAMAccountName"]).items()}
    assert first(entries[local]["samaccountname"]) == "local-folded"
    _, problems = idle_sync(sync_env, "sync-4", compare_plans=True)
    assert not problems, problems


# Account names and UPNs are unique in the domain, compared as cns are: Windows AD refuses "jurgen" beside a
# local "jürgen" (entryAlreadyExists) where Samba takes both. The names the sync gives are ASCII; a local object's
# need not be, and the DC's matching (Samba's) does not find it when the incremental plan looks the name up.

def _local_with_names(env, when: str, **attributes: str) -> None:
    if when == "between runs":
        _, problems = idle_sync(env, "sync-2", compare_plans=True)
        assert not problems, problems
    _add_local_user(env, "Local Jürgen", **attributes)


@pytest.mark.parametrize("local_made", ["before the first sync", "between runs"])
def test_an_account_name_a_local_object_holds_as_windows_ad_compares_names_is_not_given(sync_env, local_made):
    sync_env.set(plan_mode="incremental")
    ana = tenant_user("ana", "Ana First")
    if local_made == "before the first sync":
        _add_local_user(sync_env, "Local Jürgen", sAMAccountName="jürgen")
    emu = sync_env.start_tenant({"users": [ana], "groups": []})
    _, problems = sync(sync_env, "sync-1", compare_plans=True)
    assert not problems, problems
    if local_made == "between runs":
        _local_with_names(sync_env, local_made, sAMAccountName="jürgen")

    jurgen = tenant_user("jurgen", "Jurgen Other")
    emu.admin.create_user(jurgen)
    results, problems = sync(sync_env, "sync-3", compare_plans=True)
    assert not problems, problems
    assert results["plan"]["plan_mode"]["mode"] == "incremental"
    entries = {rdn_value(dn): e for dn, e in sync_env.synced_entries(["sAMAccountName"]).items()}
    assert first(entries["Local Jürgen"]["samaccountname"]) == "jürgen"  # the local object, untouched
    given = first(entries["Jurgen Other"]["samaccountname"])
    assert given.startswith("jurgen-") and given[len("jurgen-"):] == jurgen["id"].replace("-", "")[:4], given
    assert results["plan"]["collisions"] == 1
    _, problems = idle_sync(sync_env, "sync-4", compare_plans=True)
    assert not problems, problems


def test_a_upn_a_local_object_holds_as_windows_ad_compares_names_quarantines_the_tenant_object(sync_env):
    """A full-width UPN is the same UPN to Windows AD (unique in the forest): the tenant object is held, as for
    any UPN a local object holds, in both plan modes."""
    sync_env.set(plan_mode="incremental")
    ana = tenant_user("ana", "Ana First")
    emu = sync_env.start_tenant({"users": [ana], "groups": []})
    _, problems = sync(sync_env, "sync-1", compare_plans=True)
    assert not problems, problems
    _local_with_names(sync_env, "between runs", userPrincipalName="ｊｕｒｇｅｎ@contoso.example")

    jurgen = tenant_user("jurgen", "Jurgen Other")
    emu.admin.create_user(jurgen)
    results, problems = sync(sync_env, "sync-3", compare_plans=True)
    assert not problems, problems
    assert results["plan"]["plan_mode"]["mode"] == "incremental"
    assert results["plan"]["collisions"] == 1
    assert "Jurgen Other" not in {rdn_value(dn) for dn in sync_env.synced_entries(["cn"])}
    _, problems = idle_sync(sync_env, "sync-4", compare_plans=True)
    assert not problems, problems
