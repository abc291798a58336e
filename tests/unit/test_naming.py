"""sAMAccountName, cn and DN rules (docs/design.md, "Names"), and what a tenant object id looks like."""

import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_sync.naming import (
    OBJECT_ID_PATTERN,
    SAM_MAX,
    account_name_base,
    assign_account_names,
    assign_common_names,
    common_name_options,
    is_object_id,
    is_valid_account_name,
    name_key,
)

ids = st.uuids().map(str)


@given(st.text(), ids, st.sampled_from(["user", "group"]))
def test_derived_account_names_are_valid(source, anchor, kind):
    assert is_valid_account_name(account_name_base(source, anchor, kind))


@given(st.lists(st.tuples(ids, st.text(max_size=30)), max_size=40, unique_by=lambda t: t[0]),
       st.sets(st.text(min_size=1, max_size=20), max_size=20))
@settings(max_examples=200)
def test_assigned_account_names_are_unique_valid_and_avoid_taken_names(objects, taken):
    candidates = [(a, account_name_base(s, a, "user")) for a, s in objects]
    names = assign_account_names(candidates, {}, taken)
    lowered = [n.lower() for n in names.values()]
    assert len(set(lowered)) == len(lowered)
    assert not set(lowered) & {t.lower() for t in taken}
    assert all(is_valid_account_name(n) for n in names.values())


@given(st.lists(st.tuples(ids, st.text(max_size=30)), max_size=20, unique_by=lambda t: t[0]))
def test_account_names_are_deterministic_whatever_the_input_order(objects):
    candidates = [(a, account_name_base(s, a, "user")) for a, s in objects]
    assert assign_account_names(candidates, {}, []) == assign_account_names(list(reversed(candidates)), {}, [])


def test_existing_account_name_is_kept_even_when_the_source_changes():
    anchor = str(uuid.uuid4())
    names = assign_account_names([(anchor, "newnick")], {anchor: "oldnick"}, ["oldnick"])
    assert names[anchor] == "oldnick"


def test_collision_with_a_local_name_gets_an_id_suffix():
    anchor = "0123abcd-0000-0000-0000-000000000000"
    assert assign_account_names([(anchor, "admin")], {}, ["Admin"])[anchor] == "admin-0123"


def test_long_and_accented_sources_fold_and_cut():
    name = account_name_base("Ærøskøbing.Østergård-Jørgensen", "x", "user")
    assert name == "AEroskobing.Ostergar" and len(name) == SAM_MAX


def test_source_of_only_punctuation_falls_back_to_the_id():
    assert account_name_base("***///", "abcdef12-0000-0000-0000-000000000000", "group") == "g-abcdef12"


def test_duplicate_display_names_get_distinct_stable_cns():
    a, b = "aaaaaaaa-1111-0000-0000-000000000000", "bbbbbbbb-2222-0000-0000-000000000000"
    first = assign_common_names([(a, "Ana Lima"), (b, "ana lima")], [])
    assert first == {a: "Ana Lima (aaaaaaaa)", b: "ana lima (bbbbbbbb)"}
    assert assign_common_names([(b, "ana lima"), (a, "Ana Lima")], []) == first


def test_cn_held_by_a_local_object_gets_a_suffix():
    a = "cccccccc-1111-0000-0000-000000000000"
    assert assign_common_names([(a, "Service")], ["service"]) == {a: "Service (cccccccc)"}


def _canonical_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@given(st.one_of(ids, ids.map(str.upper), ids.map(lambda i: "{" + i + "}"), ids.map(lambda i: i.replace("-", "")),
                 ids.map(lambda i: i + "\n"), ids.map(lambda i: "urn:uuid:" + i), st.text(max_size=40)))
def test_an_object_id_is_a_guid_written_8_4_4_4_12_in_either_case(value):
    assert is_object_id(value) == _canonical_guid(value)
    if "\n" not in value:  # JSON schema and GX search with the pattern, where $ also matches before a final newline
        assert (re.search(OBJECT_ID_PATTERN, value) is not None) == _canonical_guid(value)


def test_only_text_is_an_object_id():
    assert not is_object_id(None) and not is_object_id(uuid.uuid4()) and not is_object_id(12)


def _names_by_blocked_sets(candidates, existing, taken, reserved):
    """assign_account_names as first written: per candidate, the set of every name it may not take."""
    from domain_sync.naming import account_name_options

    used = {n.lower() for n in taken} | {n.lower() for n in existing.values()}
    reserved = {n.lower(): a for n, a in reserved.items() if n.lower() not in used}
    out = {}
    for anchor, base in sorted(candidates):
        if anchor in existing:
            out[anchor] = existing[anchor]
            continue
        blocked = used | {n for n, owner in reserved.items() if owner != anchor}
        out[anchor] = next(n for n in account_name_options(anchor, base) if n.lower() not in blocked)
        used.add(out[anchor].lower())
    return out


@settings(max_examples=200, deadline=None)
@given(bases=st.lists(st.sampled_from(["ann", "Ann", "bo", "bo-0000", "x" * 20, "cy.d"]), min_size=1, max_size=12),
       taken=st.lists(st.sampled_from(["ann", "BO", "bo-0000", "cy.d-0000"]), max_size=3),
       reserve=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["ann", "bo", "ann-0000", "cy.d"])), max_size=5),
       kept=st.sets(st.integers(0, 11), max_size=3))
def test_account_names_with_reserved_names_are_the_ones_blocked_name_sets_give(bases, taken, reserve, kept):
    anchors = [f"0000{i:04d}-0000-4000-8000-000000000000" for i in range(len(bases))]
    candidates = list(zip(anchors, bases, strict=True))
    existing = {anchors[i]: f"kept{i}" for i in kept if i < len(anchors)}
    reserved = {name: anchors[i] for i, name in reserve if i < len(anchors)}
    assert assign_account_names(candidates, existing, taken, reserved) == _names_by_blocked_sets(
        candidates, existing, taken, reserved)


@given(st.uuids(), st.booleans(), st.text(max_size=40))
def test_the_hex_of_an_anchor_is_its_hex_digits_whatever_its_form(value, upper, other):
    import hashlib

    from domain_sync.naming import _hex_of

    def by_the_rule(anchor: str) -> str:  # every hex digit of the anchor, padded by a hash when fewer than 12
        digits = re.sub(r"[^0-9a-f]", "", anchor.lower())
        return digits if len(digits) >= 12 else digits + hashlib.sha1(anchor.encode("utf-8")).hexdigest()

    anchor = str(value).upper() if upper else str(value)
    assert _hex_of(anchor) == by_the_rule(anchor) == str(value).replace("-", "")
    assert _hex_of(other) == by_the_rule(other)
    assert _hex_of(anchor + " ") == by_the_rule(anchor + " ")


_PREFIXES = ["0a1b2c3d", "0A1B2C3D", "ffff0000"]
anchors_for_names = st.one_of(
    st.uuids().map(str),
    st.tuples(st.sampled_from(_PREFIXES), st.uuids()).map(lambda t: t[0] + str(t[1])[8:]),  # shared 8 digits
    st.text(alphabet="abcxyz-0129", max_size=10),
)
bases_for_names = st.one_of(
    st.sampled_from(["Ann", "ann", "ANN ", "Ann (0a1b2c3d)", "ann (0a1b2c3d)", "Bo", "ß", "SS", "ss", "Σ",
                     "x" * 60, "y" * 53 + "  z", "\U0001F600" * 30]),
    st.text(min_size=1, max_size=70),
)


@given(st.lists(st.tuples(anchors_for_names, bases_for_names), max_size=30))
@settings(max_examples=300, deadline=None)
def test_common_names_among_objects_are_the_ones_assigned_in_turn(objects):
    from domain_sync.naming import assign_common_names, common_names_among

    anchors, bases = [a for a, _ in objects], [b for _, b in objects]
    assigned = assign_common_names(objects, [])
    assert common_names_among(anchors, bases) == [assigned[a] for a in anchors]


# ---- names as Windows AD compares them (name_key)

@pytest.mark.parametrize("one, other", [
    ("Müller", "Muller"), ("Meißner", "Meissner"), ("José García", "JOSE GARCIA"), ("Ｊｏｓｅ", "jose"),
    ("アキラ", "あきら"), ("ｱｷﾗ", "あきら"), ("Søren", "Soren"), ("ﬁnn", "Finn"), ("Zo\u00eb", "Zoe\u0308"),
    ("Ana\u200bLima", "AnaLima"), ("Ǆemal", "džemal"), ("İpek", "ipek"), ("ნინო", "ᲜᲘᲜᲝ"),
])
def test_names_windows_ad_takes_for_one_have_one_key(one, other):
    assert name_key(one) == name_key(other)


@pytest.mark.parametrize("one, other", [("Ana", "Anna"), ("Lee", "Li"), ("Ana Lima", "Ana-Lima"), ("Åsa", "Ása (2)")])
def test_different_names_keep_different_keys(one, other):
    assert name_key(one) != name_key(other)


@given(st.text(max_size=30))
@settings(max_examples=500, deadline=None)
def test_the_name_key_is_a_key_of_the_case_folded_name_and_of_itself(text):
    """Names equal without case stay equal (the key only joins names, never parts two that casefold joins), and
    the key of a key is itself (keys stored and compared again: local names, held cns)."""
    key = name_key(text)
    assert name_key(text.casefold()) == key
    assert name_key(key) == key


@given(st.lists(st.tuples(st.sampled_from([f"{n % 4:08x}-0000-0000-0000-{n:012x}" for n in range(12)]),
                          st.sampled_from(["José", "Jose", "JOSÉ", "Ｊｏｓｅ", "Zoë", "Zoe", "アキラ", "あきら",
                                           "Jose (00000001)", "ZOË (00000002)",
                                           "Jose (00000001000000000000000000000005)"])),
                max_size=10),
       st.sets(st.sampled_from(["jose", "zoë", "あきら", "ana", "Jose (00000001)", "ｊｏｓｅ (00000002)",
                                "ｊｏｓｅ (00000002000000000000000000000006)"]), max_size=4))
@settings(max_examples=500, deadline=None)
def test_assigned_cns_are_unique_as_windows_ad_compares_them(objects, local):
    """Whatever the display names (one written as another object's suffixed or whole-id cn, ids sharing their
    first 8 hex digits) and whichever of an object's cns local objects hold."""
    objects = list(dict(objects).items())
    names = assign_common_names(objects, local)
    keys = [name_key(n) for n in names.values()]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {name_key(n) for n in local}
    assert all(names[a] in common_name_options(a, base) or re.fullmatch(rf".* \({a.replace('-', '')}-\d+\)", names[a])
               for a, base in objects)


def test_the_cns_an_object_may_have_are_its_options_and_its_counted_whole_id_forms():
    from domain_sync.naming import is_common_name_of

    a = "be132b3d-e762-429d-bab4-d2b53ffdc5ac"
    held = ["Søren", "Søren (be132b3d)", "Søren (be132b3de762429dbab4d2b53ffdc5ac)"]
    assert assign_common_names([(a, "Søren")], held) == {a: "Søren (be132b3de762429dbab4d2b53ffdc5ac-2)"}
    assert all(is_common_name_of(a, "Søren", cn) for cn in [*held, "Søren (be132b3de762429dbab4d2b53ffdc5ac-7)"])
    assert not any(is_common_name_of(a, "Søren", cn) for cn in ["Søren (be132b3d-2)", "Søren (0000-2)", "Sören"])
