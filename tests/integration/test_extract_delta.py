"""Delta rounds through the provider's hook against the emulator, at full fidelity: $select, full and
incremental reads, deletes, restores and paged memberships, expired, garbled and old delta links, and
delta links committed only after a successful apply."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pandas as pd
import pytest

from domain_sync.alerts import read_alerts
from domain_sync.mapping import load_mapping
from domain_sync.state import ApplyIncomplete, StateStore
from tests.fixtures.sync_env import by_sam, first, run_folder, staged, tenant_group, tenant_user

pytestmark = pytest.mark.integration

EXTRACT = ["extract_users", "extract_groups"]
FOLD = [*EXTRACT, "transform"]


def snapshot(env, run_id: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(run_folder(env, run_id).snapshot(name))


def fold(env, run_id: str, **params) -> dict:
    """Extract and transform a round, then commit it as a successful apply would (no domain needed)."""
    result = env.run(stages=FOLD, run_id=run_id, **params)
    links = run_folder(env, run_id).delta_links()
    StateStore(env.settings.state_dir).commit(run_folder(env, run_id).snapshot_dir, links)
    return result


def members_of(frame: pd.DataFrame, group_id: str) -> set[str]:
    return set(frame.loc[frame["group_id"] == group_id, "member_id"])


def test_requests_select_only_mapped_attributes_and_stage_no_others(sync_env, monkeypatch):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    extra = {"usageLocation": "NO", "ageGroup": "Adult", "otherMails": ["x@elsewhere.example"],
             "onPremisesImmutableId": "imm-1"}
    people = [tenant_user(f"sel{i}", f"Sel {i}", city="Oslo", **extra) for i in range(3)]
    group = tenant_group("Selected", people, visibility="Private", classification="secret")
    emu = sync_env.start_tenant({"users": people, "groups": [group]})
    calls: list[tuple[str, dict | None, list[dict]]] = []
    original = KiotaRequestAdapterHook.run

    async def spy(self, url="", query_parameters=None, **kwargs):
        response = await original(self, url=url, query_parameters=query_parameters, **kwargs)
        calls.append((url, query_parameters, response.get("value") or []))
        return response

    monkeypatch.setattr(KiotaRequestAdapterHook, "run", spy)
    fold(sync_env, "first")
    emu.admin.update_user(people[0]["id"], {"usageLocation": "SE", "city": "Malmö"})
    emu.admin.update_group(group["id"], {"classification": "public", "description": "changed"})
    sync_env.run(stages=EXTRACT, run_id="second")

    mapping = load_mapping(sync_env.settings.mapping_file)
    for kind, resource in (("user", "users"), ("group", "groups")):
        select = mapping.graph_select(kind)
        first = [c for c in calls if c[0] == f"{resource}/delta"]
        assert len(first) == 1 and first[0][1] == {"$select": ",".join(select)}
        items = [item for c in calls if resource in c[0] for item in c[2]]
        assert len(items) >= 2, "both rounds returned objects"
        allowed = set(select) | {"members@delta", "@removed"}
        assert all(set(item) <= allowed for item in items), [sorted(set(i) - allowed) for i in items]
        for run_id in ("first", "second"):
            columns = set(staged(sync_env, run_id, resource).columns)
            expected = (set(select) - {"manager", "members"}) | {"_removed", "_fields"}
            assert columns == expected | ({"manager_id"} if kind == "user" else set())
    staged_user = staged(sync_env, "second", "users").iloc[0]
    assert staged_user["city"] == "Malmö" and staged_user["id"] == people[0]["id"]


def test_first_run_and_full_resync_read_everything_later_runs_only_the_changes(sync_env):
    people = [tenant_user(f"inc{i:02d}", f"Inc {i:02d}") for i in range(23)]
    emu = sync_env.start_tenant({"users": people, "groups": [tenant_group("All", people)]})
    emu.admin.settings(page_size=5)

    first = fold(sync_env, "first")["extract_users"]
    assert (first["full_read"], first["objects"], first["pages"]) == (True, 23, 5)
    assert emu.admin.stats()["requests"]["/v1.0/users/delta"] == {"200": 5}

    emu.admin.reset_stats()
    emu.admin.update_user(people[3]["id"], {"jobTitle": "Chief"})
    newcomer = tenant_user("inc99", "Inc 99")
    emu.admin.create_user(newcomer)
    later = fold(sync_env, "later")
    assert (later["extract_users"]["full_read"], later["extract_users"]["objects"]) == (False, 2)
    assert set(staged(sync_env, "later", "users")["id"]) == {people[3]["id"], newcomer["id"]}
    assert later["extract_groups"]["objects"] == 0
    assert emu.admin.stats()["requests"]["/v1.0/users/delta"] == {"200": 1}
    assert len(snapshot(sync_env, "later", "users")) == 24

    unchanged = fold(sync_env, "unchanged")
    assert unchanged["extract_users"]["objects"] == unchanged["extract_groups"]["objects"] == 0

    emu.admin.reset_stats()
    full = fold(sync_env, "full", full_resync=True)["extract_users"]
    assert (full["full_read"], full["objects"], full["pages"]) == (True, 24, 5)
    assert emu.admin.stats()["requests"]["/v1.0/users/delta"] == {"200": 5}


def test_deletes_restores_and_membership_changes_of_paged_groups_reach_staging_and_snapshot(sync_env):
    u = [tenant_user(f"life{i}", f"Life {i}") for i in range(9)]
    big = tenant_group("Big", u[:7])
    small = tenant_group("Small", [u[7], u[8]])
    emu = sync_env.start_tenant({"users": u, "groups": [big, small]})
    emu.admin.settings(members_page_size=2)

    first = fold(sync_env, "first")
    members = staged(sync_env, "first", "members")
    assert members_of(members, big["id"]) == {x["id"] for x in u[:7]} and len(members) == 9
    assert (staged(sync_env, "first", "groups")["id"] == big["id"]).sum() == 4, "7 members over pages of 2"
    assert first["extract_groups"]["member_changes"] == 9

    emu.admin.delete_user(u[1]["id"])                   # soft delete: leaves its groups
    emu.admin.delete_user(u[2]["id"], permanent=True)   # hard delete
    emu.admin.remove_member(big["id"], u[3]["id"])
    emu.admin.add_member(big["id"], u[8]["id"])
    emu.admin.delete_group(small["id"], permanent=True)
    second = fold(sync_env, "second")

    users = staged(sync_env, "second", "users").set_index("id")
    assert users.loc[u[1]["id"], "_removed"] == "changed" and users.loc[u[2]["id"], "_removed"] == "deleted"
    groups = staged(sync_env, "second", "groups")
    assert set(groups.loc[groups["_removed"] == "deleted", "id"]) == {small["id"]}
    members = staged(sync_env, "second", "members")
    changes = members[members["group_id"] == big["id"]]
    assert sorted(zip(changes["member_id"], changes["removed"], strict=True)) == sorted(
        [(u[1]["id"], True), (u[2]["id"], True), (u[3]["id"], True), (u[8]["id"], False)])
    assert (groups["id"] == big["id"]).sum() == 2, "4 member changes over pages of 2"
    assert second["extract_users"]["removed"] == 2

    state = snapshot(sync_env, "second", "users").set_index("id")["tenant_state"]
    assert state[u[1]["id"]] == "soft_deleted" and u[2]["id"] not in state.index
    snap_members = snapshot(sync_env, "second", "members")
    assert members_of(snap_members, big["id"]) == {u[0]["id"], u[4]["id"], u[5]["id"], u[6]["id"], u[8]["id"]}
    assert set(snapshot(sync_env, "second", "groups")["id"]) == {big["id"]}
    assert set(snap_members["group_id"]) == {big["id"]}

    emu.admin.restore_user(u[1]["id"])                  # back, and back in the groups it was in
    fold(sync_env, "third")
    users = staged(sync_env, "third", "users")
    assert list(users["id"]) == [u[1]["id"]] and users["_removed"].isna().all()
    members = staged(sync_env, "third", "members")
    assert list(zip(members["group_id"], members["member_id"], members["removed"], strict=True)) == [
        (big["id"], u[1]["id"], False)]
    assert snapshot(sync_env, "third", "users").set_index("id").loc[u[1]["id"], "tenant_state"] == "active"
    assert u[1]["id"] in members_of(snapshot(sync_env, "third", "members"), big["id"])


@pytest.mark.parametrize("same_endpoint", [True, False], ids=["restart", "other-endpoint"])
def test_a_link_the_endpoint_does_not_know_leads_to_a_full_read_that_replaces_the_snapshot(sync_env, same_endpoint):
    people = [tenant_user(f"rst{i}", f"Rst {i}") for i in range(5)]
    team = tenant_group("Team", people)
    before = sync_env.start_tenant({"users": people, "groups": [team]})
    fold(sync_env, "before")
    # The tenant as it is after the restart: one user and one membership gone, a group added.
    extra = tenant_group("Extra", people[:2])
    team["members"] = team["members"][:3]
    ports = {"graph_port": urlsplit(before.graph_url).port, "token_port": urlsplit(before.authority).port}
    # Same ports: the restarted emulator answers 400 syncStateNotFound to links of its earlier run. Other
    # ports: the saved link names another endpoint and is not followed at all.
    emu = sync_env.start_tenant({"users": people[:4], "groups": [team, extra]}, **(ports if same_endpoint else {}))

    result = sync_env.run(stages=FOLD, run_id="after")
    for resource in ("users", "groups"):
        assert result[f"extract_{resource}"]["expired_link_recovered"] is True
        assert result[f"extract_{resource}"]["full_read"] is True
        statuses = emu.admin.stats()["requests"][f"/v1.0/{resource}/delta"]
        assert statuses == ({"400": 1, "200": 1} if same_endpoint else {"200": 1})
    assert set(snapshot(sync_env, "after", "users")["id"]) == {p["id"] for p in people[:4]}
    assert set(snapshot(sync_env, "after", "groups")["id"]) == {team["id"], extra["id"]}
    snap_members = snapshot(sync_env, "after", "members")
    assert members_of(snap_members, team["id"]) == {p["id"] for p in people[:3]}
    assert result["transform"]["users_removed_this_round"] == 1


def test_a_saved_link_older_than_six_days_is_warned_about_and_alerted(sync_env, caplog):
    people = [tenant_user(f"old{i}", f"Old {i}") for i in range(3)]
    emu = sync_env.start_tenant({"users": people, "groups": []})
    fold(sync_env, "first")
    state = StateStore(sync_env.settings.state_dir)
    links_file = state.current() / "delta_links.json"
    links = json.loads(links_file.read_text())
    then = (datetime.now(UTC) - timedelta(days=6.5)).isoformat()
    links["users"]["saved_at"] = links["users"]["received_at"] = then
    links_file.write_text(json.dumps(links))
    emu.admin.update_user(people[0]["id"], {"city": "Bergen"})

    caplog.set_level("WARNING")
    result = sync_env.run(stages=EXTRACT, run_id="aged")
    assert result["extract_users"]["full_read"] is False and result["extract_users"]["objects"] == 1
    assert 6.4 < result["extract_users"]["delta_link_age_days"] < 6.6
    assert "6.5 days old" in caplog.text
    alerts = [a for a in read_alerts(sync_env.settings) if a["kind"] == "delta_link_old"]
    assert [(a["resource"], a["run_id"]) for a in alerts] == [("users", "aged")]


# ---- with the domain: apply, commit and report


DISABLED = 0x2  # userAccountControl ACCOUNTDISABLE


def disabled(entry: tuple[str, dict]) -> bool:
    return bool(int(first(entry[1]["useraccountcontrol"])) & DISABLED)


def member_dns(entries: dict, group: str) -> set[str]:
    return {m.lower() for m in entries[group][1]["member"]}


def test_an_expired_delta_link_leads_to_a_full_reconcile_in_the_same_run_and_an_alert(sync_env):
    people = [tenant_user(f"exp{i}", f"Exp {i}") for i in range(4)]
    team = tenant_group("Expiry Team", people)
    emu = sync_env.start_tenant({"users": people, "groups": [team]})
    sync_env.run()
    assert "exp3" in by_sam(sync_env.synced_entries(["sAMAccountName"]))

    emu.admin.delete_user(people[3]["id"], permanent=True)
    emu.admin.remove_member(team["id"], people[0]["id"])
    emu.admin.settings(delta_link_max_age_seconds=1)
    time.sleep(1.2)
    result = sync_env.run(run_id="expired")     # no exception: the run recovers by itself

    assert result["extract_users"]["expired_link_recovered"] and result["extract_groups"]["expired_link_recovered"]
    assert result["extract_users"]["full_read"] and result["plan"]["counts"].get("user.delete") == 1
    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "member"]))
    assert set(entries) == {"exp0", "exp1", "exp2", "ExpiryTeam"}
    assert member_dns(entries, "ExpiryTeam") == {entries[n][0].lower() for n in ("exp1", "exp2")}
    alerts = [a for a in read_alerts(sync_env.settings) if a["kind"] == "delta_link_expired"]
    assert len(alerts) == 2 and {a["run_id"] for a in alerts} == {"expired"}

    emu.admin.settings(delta_link_max_age_seconds=7 * 24 * 3600)
    after = sync_env.run()
    assert after["extract_users"]["full_read"] is False and after["plan"]["changes"] == 0


def with_token(link: str, token: str) -> str:
    return f"{link.partition('$deltatoken=')[0]}$deltatoken={token}"


def test_a_garbled_saved_delta_link_leads_to_one_full_read_an_alert_and_no_writes(sync_env):
    people = [tenant_user(f"grb{i}", f"Grb {i}") for i in range(4)]
    team = tenant_group("Garble Team", people)
    emu = sync_env.start_tenant({"users": people, "groups": [team]})
    sync_env.run()
    emu.admin.delete_user(people[3]["id"])      # soft delete: disabled; a full read does not list it
    sync_env.run()
    assert disabled(by_sam(sync_env.synced_entries(["sAMAccountName", "userAccountControl"]))["grb3"])

    # The users link truncated, the groups link carrying the users' token (another query's).
    state = StateStore(sync_env.settings.state_dir)
    links_file = state.current() / "delta_links.json"
    links = json.loads(links_file.read_text())
    users_token = links["users"]["link"].partition("$deltatoken=")[2]
    links["users"]["link"] = with_token(links["users"]["link"], users_token[: len(users_token) // 2])
    links["groups"]["link"] = with_token(links["groups"]["link"], users_token)
    links_file.write_text(json.dumps(links))
    emu.admin.reset_stats()
    usn = sync_env.highest_usn()

    result = sync_env.run(run_id="garbled")     # no exception: the run recovers by itself
    for resource in ("users", "groups"):
        extract = result[f"extract_{resource}"]
        assert extract["unusable_link_recovered"] and extract["full_read"] and not extract["expired_link_recovered"]
        assert "Request_BadRequest" in extract["saved_link_problem"]
        assert emu.admin.stats()["requests"][f"/v1.0/{resource}/delta"] == {"400": 1, "200": 1}
    assert result["plan"]["changes"] == 0 and sync_env.highest_usn() == usn, "an unchanged tenant wrote"
    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "userAccountControl"]))
    assert set(entries) == {"grb0", "grb1", "grb2", "grb3", "GarbleTeam"} and disabled(entries["grb3"])
    alerts = [a for a in read_alerts(sync_env.settings) if a["kind"] == "delta_link_unusable"]
    assert sorted((a["resource"], a["run_id"]) for a in alerts) == [("groups", "garbled"), ("users", "garbled")]
    assert all(users_token[:20] not in a["message"] for a in alerts)

    emu.admin.reset_stats()
    after = sync_env.run(run_id="after")
    assert after["extract_users"]["full_read"] is False and after["extract_groups"]["full_read"] is False
    assert emu.admin.stats()["requests"]["/v1.0/users/delta"] == {"200": 1}
    assert after["plan"]["changes"] == 0
    assert len([a for a in read_alerts(sync_env.settings) if a["kind"] == "delta_link_unusable"]) == 2


def test_delta_links_stay_until_an_apply_succeeds_and_the_next_run_reapplies_the_same_changes(
        sync_env, local_domain, monkeypatch):
    from domain_sync.pipeline import run_stage

    ana, bob = tenant_user("ana", "Ana Lima"), tenant_user("bob", "Bob Stone")
    team = tenant_group("Commit Team", [ana, bob])
    emu = sync_env.start_tenant({"users": [ana, bob], "groups": [team]})
    sync_env.run()
    state = StateStore(sync_env.settings.state_dir)
    committed = state.delta_links()

    carl = tenant_user("carl", "Carl Berg")
    emu.admin.create_user(carl)
    emu.admin.add_member(team["id"], carl["id"])
    emu.admin.remove_member(team["id"], bob["id"])
    emu.admin.update_user(ana["id"], {"jobTitle": "Lead"})
    sync_env.run(stages=["extract_users", "extract_groups", "transform", "validate", "plan"], run_id="broken")
    refused = dict(local_domain.connection(), password="not-the-admin-password")
    monkeypatch.setenv("AIRFLOW_CONN_LDAP_DOMAIN", json.dumps(refused))
    sync_env.set(ldap_retry_budget_seconds=1)
    with pytest.raises(Exception, match="ldap_domain"):
        run_stage("apply", "broken", {})
    with pytest.raises(ApplyIncomplete, match="apply did not go through the plan"):
        run_stage("commit", "broken", {})
    assert state.delta_links() == committed, "a delta link was saved although its apply failed"

    monkeypatch.setenv("AIRFLOW_CONN_LDAP_DOMAIN", local_domain.connection_json())
    again = sync_env.run(run_id="again")
    assert again["extract_users"]["full_read"] is False
    assert set(staged(sync_env, "again", "users")["id"]) == {carl["id"], ana["id"]}
    assert again["extract_groups"]["member_changes"] == 2
    entries = by_sam(sync_env.synced_entries(["sAMAccountName", "member", "title"]))
    assert set(entries) == {"ana", "bob", "carl", "CommitTeam"}
    assert first(entries["ana"][1]["title"]) == "Lead"
    assert member_dns(entries, "CommitTeam") == {entries[n][0].lower() for n in ("ana", "carl")}
    assert state.delta_links() != committed
