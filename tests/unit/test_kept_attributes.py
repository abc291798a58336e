"""KeptAttributes (plan/observed.py) answers as the dict of lists it replaces: the same names, the same value
lists, the same absences, for objects of one read sharing one table of names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain_sync.plan.observed import KeptAttributes

NAMES = st.sampled_from(["cn", "samaccountname", "manager", "title", "proxyaddresses", "description"])
VALUES = st.lists(st.text(max_size=4), min_size=1, max_size=3)


def kept(objects: list[dict[str, list[str]]]) -> list[KeptAttributes]:
    """As the collector keeps them: one table of places, filled as names first appear."""
    slots: dict[str, int] = {}
    out = []
    for attributes in objects:
        values: list = [None] * len(slots)
        for name, vals in attributes.items():
            slot = slots.setdefault(name, len(slots))
            values += [None] * (slot + 1 - len(values))
            values[slot] = vals[0] if len(vals) == 1 else tuple(vals)
        out.append(KeptAttributes(slots, values))
    return out


@given(st.lists(st.dictionaries(NAMES, VALUES), min_size=1, max_size=5), NAMES, st.lists(st.text(max_size=3),
                                                                                         max_size=2))
def test_kept_attributes_answer_as_the_dict(objects, name, new_values):
    for attributes, mapping in zip(objects, kept(objects), strict=True):
        assert dict(mapping.items()) == attributes and mapping == attributes
        assert len(mapping) == len(attributes) and set(mapping) == set(attributes)
        assert mapping.get(name, []) == attributes.get(name, []) and (name in mapping) == (name in attributes)
        assert mapping.get("not-read") is None and "not-read" not in mapping
        if name in attributes:
            got = mapping[name]
            got.append("changed")  # a fresh list: the kept values do not move
            assert mapping[name] == attributes[name]
            mapping[name] = new_values
            assert mapping.get(name, []) == new_values  # an empty list: the attribute is gone
            assert (name in mapping) == bool(new_values)
