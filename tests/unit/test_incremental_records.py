"""Records made for a round's objects only equal the records made whole (transform/directory.py with kept
records), and the rows a suite checks then find every failure a check of every row finds
(validate/suites.rows_to_check)."""

from __future__ import annotations

import io

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_sync.config import Settings
from domain_sync.mapping import load_mapping
from domain_sync.records import GROUP, TENANT_STATE, USER
from domain_sync.transform.directory import directory_records
from domain_sync.transform.incremental import KeptRecords, round_ids
from domain_sync.validate.suites import rows_to_check

MAPPING = load_mapping(Settings().mapping_file)
NAMES = ["Ann Lee", "ann lee", "Bo", "Émile Zola", "", None, "x" * 70]


def user(n: int, name, enabled: bool, in_scope: bool, synced: bool) -> dict:
    return {"id": f"00000000-0000-4000-8000-{n:012d}", "displayName": name, "mailNickname": f"u{n}",
            "userPrincipalName": f"u{n}@corp.example.test", "accountEnabled": enabled, "jobTitle": name,
            "in_scope": in_scope, "synced": synced, TENANT_STATE: "active"}


users_strategy = st.lists(st.tuples(st.sampled_from(NAMES), st.booleans(), st.booleans(), st.booleans()),
                          min_size=1, max_size=12)


def as_written(records: pd.DataFrame) -> pd.DataFrame:
    """The frame as the next stage reads it (through Parquet)."""
    buffer = io.BytesIO()
    records.to_parquet(buffer, index=False)
    return pd.read_parquet(io.BytesIO(buffer.getvalue()))


def assert_same_records(made: pd.DataFrame, whole: pd.DataFrame) -> None:
    """Equal as written: the same columns and values. A column holding no value at all has no type of its own
    (kept rows read back carry the type they were written with, rows made now none), so its type is not
    compared."""
    made, whole = as_written(made), as_written(whole)
    assert list(made.columns) == list(whole.columns)
    empty = [c for c in made.columns if made[c].isna().all() and whole[c].isna().all()]
    pd.testing.assert_frame_equal(made.drop(columns=empty), whole.drop(columns=empty))


def frame(rows: list[tuple], offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame([user(i + offset, *r) for i, r in enumerate(rows)])


@settings(max_examples=40, deadline=None)
@given(before=users_strategy, after=users_strategy, keep_order=st.booleans())
def test_records_made_for_the_changed_objects_equal_the_records_made_whole(before, after, keep_order):
    groups = pd.DataFrame([{"id": "10000000-0000-4000-8000-000000000001", "displayName": "G", "in_scope": True,
                            "securityEnabled": True}])
    members = pd.DataFrame(columns=["group_id", "member_id", "member_type"])
    old_users = frame(before)
    new_users = frame(after)  # the same ids where both have a row: rows changed, added, removed
    if not keep_order:
        new_users = new_users.iloc[::-1].reset_index(drop=True)
    old = directory_records(old_users, groups, members, MAPPING)
    # The round names every id whose row differs (or appears, or goes); the others are kept.
    merged = old_users.merge(new_users, on="id", how="outer", suffixes=("_old", "_new"), indicator=True)
    columns = [c for c in old_users.columns if c != "id"]
    same = merged["_merge"].eq("both")
    for c in columns:
        same &= merged[f"{c}_old"].astype(str).eq(merged[f"{c}_new"].astype(str))
    changed = set(merged.loc[~same, "id"])
    kept = KeptRecords(as_written(old.users), as_written(old.groups), changed)  # as committed

    made = directory_records(new_users, groups, members, MAPPING, kept=kept)
    whole = directory_records(new_users, groups, members, MAPPING)

    assert_same_records(made.users, whole.users)
    assert_same_records(made.groups, whole.groups)
    assert made.remade == {a for a in whole.users["anchor"] if a in changed or a not in set(old.users["anchor"])}
    fixes = lambda records: sorted((records.users["anchor"][f.row], f.attribute, f.action)  # noqa: E731
                                   for f in records.fixes[USER])
    assert {f for f in fixes(made)} == {f for f in fixes(whole) if f[0] in made.remade}
    assert made.fixes[GROUP] == []


@given(keys=st.lists(st.sampled_from(["a", "b", "c", None, "d", "e"]), min_size=0, max_size=20),
       only=st.sets(st.integers(0, 19)))
def test_the_rows_checked_hold_every_duplicate_value_and_the_objects_named(keys, only):
    data = pd.DataFrame({"anchor": [str(i) for i in range(len(keys))], "key": keys})
    named = {str(i) for i in only}
    checked = rows_to_check(data, "anchor", ["key"], named)
    failing_everywhere = set(data.loc[data["key"].notna() & data["key"].duplicated(keep=False), "anchor"])
    failing_in_checked = set(checked.loc[checked["key"].notna() & checked["key"].duplicated(keep=False), "anchor"])
    assert failing_in_checked == failing_everywhere
    assert named & set(data["anchor"]) <= set(checked["anchor"])
    assert rows_to_check(data, "anchor", ["key"], None) is data


def test_round_ids_are_the_ids_of_every_staged_row():
    users = pd.DataFrame({"id": ["a", None, "b"], "_removed": [None, None, "deleted"]})
    assert round_ids(users, pd.DataFrame(columns=["id"]), pd.DataFrame()) == {"a", "b"}


def test_kept_records_of_other_columns_are_not_used_every_record_is_made():
    users = frame([("Ann Lee", True, True, True), ("Bo", True, True, True)])
    groups = pd.DataFrame(columns=["id", "displayName", "in_scope", "securityEnabled"])
    members = pd.DataFrame(columns=["group_id", "member_id", "member_type"])
    whole = directory_records(users, groups, members, MAPPING)
    stale = as_written(whole.users).drop(columns=[whole.users.columns[-1]]).assign(jobTitle="stale")
    made = directory_records(users, groups, members, MAPPING, kept=KeptRecords(stale, whole.groups, set()))
    pd.testing.assert_frame_equal(as_written(made.users), as_written(whole.users))
    assert made.remade == set(whole.users["anchor"])


GROUP_NAMES = ["Team", "team", "Émile's", None, "y" * 70]
groups_strategy = st.lists(st.tuples(st.sampled_from(GROUP_NAMES), st.sampled_from([None, "", "About us"]),
                                     st.sampled_from([None, ["SMTP:a@x.test"], ["smtp:b@x.test", "SMTP:a@x.test"]])),
                           min_size=1, max_size=8)


def group_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"id": f"10000000-0000-4000-8000-{n:012d}", "displayName": name, "description": about,
                          "proxyAddresses": proxies, "mailNickname": f"g{n}", "securityEnabled": True,
                          "in_scope": True} for n, (name, about, proxies) in enumerate(rows)])


@settings(max_examples=60, deadline=None)
@given(before=groups_strategy, after=groups_strategy)
def test_a_group_is_changed_only_by_members_exactly_when_its_record_read_back_is_the_new_one(before, after):
    from domain_sync.transform.incremental import groups_changed_by_members

    members = pd.DataFrame(columns=["group_id", "member_id", "member_type"])
    no_users = frame([(None, True, True, True)]).iloc[:0]
    old_groups, new_groups = group_frame(before), group_frame(after)
    kept_groups = as_written(directory_records(no_users, old_groups, members, MAPPING).groups)
    brought = set(new_groups["id"])  # the round brings every group of `after`
    kept = KeptRecords(as_written(directory_records(no_users, old_groups, members, MAPPING).users), kept_groups,
                       brought)
    made = directory_records(no_users, new_groups, members, MAPPING, kept=kept).groups
    staged_members = pd.DataFrame([{"group_id": gid, "member_id": f"m-{gid}", "member_type": "user",
                                    "removed": False} for gid in sorted(brought)])
    scope_changed = {sorted(brought)[0]} if len(brought) > 2 else set()
    found = groups_changed_by_members(kept, made, new_groups, staged_members, scope_changed)
    whole = directory_records(no_users, old_groups, members, MAPPING).groups
    new_whole = directory_records(no_users, new_groups, members, MAPPING).groups

    def row(records: pd.DataFrame, gid: str) -> dict:
        picked = records[records["anchor"] == gid].astype(object)
        return {k: list(v) if isinstance(v, list | tuple) else v
                for k, v in picked.where(picked.notna(), None).iloc[0].items()}

    expected = {gid for gid in brought - scope_changed if gid in set(whole["anchor"])
                and row(whole, gid) == row(new_whole, gid)}
    assert set(found) == expected
    assert all(found[gid] == [f"m-{gid}"] for gid in found)
    assert groups_changed_by_members(None, made, new_groups, staged_members, set()) == {}
