"""The column-wise delta fold gives what replaying the round row by row gives (Graph delta rules)."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_sync.records import (
    FIELDS,
    MEMBER_COLUMNS,
    REMOVED,
    REMOVED_HARD,
    REMOVED_SOFT,
    SNAPSHOT_MEMBER_COLUMNS,
    STATE_ACTIVE,
    STATE_SOFT_DELETED,
    TENANT_STATE,
)
from domain_sync.transform.tenant_state import merge_members, merge_objects

IDS = ["u1", "u2", "u3", "u4"]
PROPS = ["city", "title"]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def replay(snapshot, changes, full, soft_delete_keeps):
    """The fold as a loop over the rows in order: the specification the vectorized fold must meet."""
    objects = {}
    if snapshot is not None and not full:
        objects = {row["id"]: dict(row) for row in snapshot.to_dict("records")}
    elif snapshot is not None and soft_delete_keeps:  # a full read lists no soft-deleted user: they stay
        objects = {row["id"]: dict(row) for row in snapshot.to_dict("records")
                   if row.get(TENANT_STATE) == STATE_SOFT_DELETED}
    before = set(snapshot["id"]) if snapshot is not None else set()
    for row in changes.to_dict("records"):
        object_id = row["id"]
        removed = row.get(REMOVED)
        if not _missing(removed):
            if removed == REMOVED_SOFT and soft_delete_keeps:
                if object_id in objects:
                    objects[object_id][TENANT_STATE] = STATE_SOFT_DELETED
            elif removed in (REMOVED_SOFT, REMOVED_HARD):
                objects.pop(object_id, None)
            continue
        fields = row.get(FIELDS)
        present = set(fields.split(",")) if isinstance(fields, str) and fields else set(row)
        current = objects.get(object_id, {"id": object_id})
        for name, value in row.items():
            if name in (REMOVED, FIELDS) or (name not in present and name != "id"):
                continue
            current[name] = value
        current[TENANT_STATE] = STATE_ACTIVE
        objects[object_id] = current
    return objects, before - set(objects)


def normalized(frame_or_dict):
    rows = frame_or_dict.to_dict("records") if isinstance(frame_or_dict, pd.DataFrame) else frame_or_dict.values()
    out = {}
    for row in rows:
        values = {k: v for k, v in row.items() if k != TENANT_STATE and not _missing(v)}
        out[row["id"]] = values | {TENANT_STATE: row.get(TENANT_STATE) or STATE_ACTIVE}
    return out


change_rows = st.lists(
    st.one_of(
        st.fixed_dictionaries({"id": st.sampled_from(IDS), REMOVED: st.sampled_from([REMOVED_SOFT, REMOVED_HARD])}),
        st.fixed_dictionaries({
            "id": st.sampled_from(IDS),
            "city": st.one_of(st.none(), st.sampled_from(["Oslo", "Rome"])),
            "title": st.one_of(st.none(), st.sampled_from(["Eng", "Ops"])),
            FIELDS: st.sets(st.sampled_from(PROPS)).map(lambda s: ",".join(sorted(s))),
        }),
    ),
    max_size=12,
)


def frame_of(rows):
    columns = ["id", *PROPS, REMOVED, FIELDS]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


@given(change_rows, change_rows, st.booleans(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_vectorized_fold_equals_replaying_rows_in_order(first, second, full, soft_delete_keeps):
    base, _ = merge_objects(None, frame_of(first), True, soft_delete_keeps)
    expected, expected_gone = replay(base, frame_of(second), full, soft_delete_keeps)
    snapshot, gone = merge_objects(base, frame_of(second), full, soft_delete_keeps)
    assert normalized(snapshot) == normalized(expected)
    assert gone == expected_gone
    assert snapshot["id"].is_unique


def test_rows_without_id_are_ignored():
    snapshot, _ = merge_objects(None, frame_of([{"id": None, "city": "Oslo", FIELDS: "city"},
                                                {"id": "u1", "city": "Rome", FIELDS: "city"}]), True, True)
    assert list(snapshot["id"]) == ["u1"]


def test_soft_removal_of_an_unknown_object_is_ignored_and_a_later_appearance_restores():
    snapshot, _ = merge_objects(None, frame_of([{"id": "u1", REMOVED: REMOVED_SOFT},
                                                {"id": "u2", "city": "Oslo", FIELDS: "city"},
                                                {"id": "u2", REMOVED: REMOVED_SOFT},
                                                {"id": "u3", "city": "Rome", FIELDS: "city"},
                                                {"id": "u3", REMOVED: REMOVED_SOFT},
                                                {"id": "u3", "title": "Eng", FIELDS: "title"}]), True, True)
    states = dict(zip(snapshot["id"], snapshot[TENANT_STATE], strict=True))
    assert states == {"u2": STATE_SOFT_DELETED, "u3": STATE_ACTIVE}
    assert snapshot.set_index("id").loc["u3", "city"] == "Rome"


@given(st.lists(st.tuples(st.sampled_from(["g1", "g2"]), st.sampled_from(IDS), st.booleans()), max_size=15),
       st.lists(st.tuples(st.sampled_from(["g1", "g2"]), st.sampled_from(IDS), st.booleans()), max_size=15),
       st.booleans())
@settings(max_examples=100, deadline=None)
def test_membership_fold_equals_replaying_rows_in_order(first, second, full):
    def rows(items):
        return pd.DataFrame([(g, m, "user", r) for g, m, r in items], columns=MEMBER_COLUMNS)

    base = merge_members(None, rows(first), True, set(), set())
    expected: dict[tuple[str, str], str] = {}
    if not full:
        expected = {(g, m): t for g, m, t in base[SNAPSHOT_MEMBER_COLUMNS].itertuples(index=False)}
    for g, m, removed in second:
        if removed:
            expected.pop((g, m), None)
        else:
            expected[(g, m)] = "user"
    expected = {k: v for k, v in expected.items() if k[0] != "g2" and k[1] != "u4"}
    result = merge_members(base, rows(second), full, {"g2"}, {"u4"})
    assert {(g, m): t for g, m, t in result.itertuples(index=False)} == expected


@given(change_rows, change_rows, st.booleans(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_a_delta_round_folding_only_the_rows_it_names_gives_the_whole_fold(first, second, soft_delete_keeps,
                                                                           as_read):
    from domain_sync.transform import tenant_state

    base, _ = merge_objects(None, frame_of(first), True, soft_delete_keeps)
    untouched = pd.DataFrame({"id": [f"z{i}" for i in range(60)], "city": ["Oslo", None] * 30,
                              TENANT_STATE: [STATE_ACTIVE, None, STATE_SOFT_DELETED] * 20})
    base = pd.concat([untouched.iloc[:30], base, untouched.iloc[30:]], ignore_index=True)
    if as_read:  # strings as Parquet gives them back: Arrow-backed columns
        base = base.astype({"id": "str", "city": "str"})
    changes = frame_of(second)
    assert len(changes) < tenant_state.TOUCHED_SHARE * len(base)  # the touched-rows fold runs
    whole, whole_gone = tenant_state._fold(base, changes, False, soft_delete_keeps)
    snapshot, gone = merge_objects(base, changes, False, soft_delete_keeps)
    assert list(snapshot.columns) == list(whole.columns)
    rows = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in snapshot.to_dict("records")]
    expected = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in whole.to_dict("records")]
    assert rows == expected  # the same values in the same order
    assert gone == whole_gone
