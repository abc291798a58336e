"""Graph objects into staged rows: the manager in both of Graph's shapes, member types as Graph names them."""

import pytest

from domain_sync.extract.staging import manager_change, member_type


@pytest.mark.parametrize(("item", "expected"), [
    ({"manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1"}]}, (True, "m1")),
    ({"manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1", "@removed": {"reason": "deleted"}}]},
     (True, None)),
    ({"manager@delta": []}, (True, None)),
    ({"manager": {"id": "m2", "displayName": "Boss"}}, (True, "m2")),
    ({"manager": None}, (True, None)),
    ({"displayName": "no manager property"}, (False, None)),
])
def test_the_manager_is_read_from_manager_delta_or_an_expanded_manager(item, expected):
    assert manager_change(item) == expected


def test_a_new_manager_beside_the_removed_one_wins():
    item = {"manager@delta": [{"id": "old", "@removed": {"reason": "deleted"}}, {"id": "new"}]}
    assert manager_change(item) == (True, "new")


@pytest.mark.parametrize(("odata_type", "expected"), [
    ("#microsoft.graph.user", "user"), ("#microsoft.graph.group", "group"), ("#microsoft.graph.device", "device"),
    ("#microsoft.graph.servicePrincipal", "servicePrincipal"), ("#microsoft.graph.orgContact", "orgContact"),
])
def test_member_types_are_kept_as_graph_names_them(odata_type, expected):
    assert member_type(odata_type) == expected
