"""The on-demand sync's plan filter: only the chosen objects' changes, with the containers they need."""

from __future__ import annotations

import pytest

from domain_sync.config import SettingsError
from domain_sync.plan.restrict import chosen_objects, restrict_to_objects
from domain_sync.records import Change, ChangeSet, Op

A, B, G = ("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002",
           "cccccccc-0000-0000-0000-000000000003")


def plan():
    changes = [
        Change(Op.CREATE_CONTAINER, "container", "", "OU=Sync,DC=corp"),
        Change(Op.CREATE, "user", A, "CN=A,OU=Sync,DC=corp"),
        Change(Op.CREATE, "user", B, "CN=B,OU=Sync,DC=corp"),
        Change(Op.MODIFY, "group", G, "CN=G,OU=Sync,DC=corp", values={"description": ["x"]}),
        Change(Op.ADD_MEMBERS, "group", G, "CN=G,OU=Sync,DC=corp", members=["CN=A,OU=Sync,DC=corp",
                                                                             "CN=B,OU=Sync,DC=corp"]),
        Change(Op.DELETE, "user", "dddddddd-0000-0000-0000-000000000004", "CN=D,OU=Sync,DC=corp"),
    ]
    return ChangeSet(changes=changes, counts={})


def test_only_the_chosen_objects_changes_are_kept_with_their_container():
    restricted = restrict_to_objects(plan(), {A.upper(), G})
    assert [(c.op, c.anchor) for c in restricted.changes] == [
        (Op.CREATE_CONTAINER, ""), (Op.CREATE, A), (Op.MODIFY, G), (Op.ADD_MEMBERS, G)]
    # B is not created by this run: its DN is left out of the group's member adds.
    assert restricted.changes[-1].members == ["CN=A,OU=Sync,DC=corp"]
    assert restricted.counts == {"container.create_container": 1, "group.add_members": 1, "group.modify": 1,
                                 "user.create": 1}


def test_object_ids_param_forms():
    assert chosen_objects({}) is None and chosen_objects({"object_ids": []}) is None
    assert chosen_objects({"object_ids": [A.upper(), B]}) == {A, B}
    assert chosen_objects({"object_ids": f"{A}\n{B}, {G}"}) == {A, B, G}
    with pytest.raises(SettingsError, match="not tenant object ids"):
        chosen_objects({"object_ids": ["ana@contoso.example"]})
    too_many = [f"{n:08x}-0000-0000-0000-000000000000" for n in range(51)]
    with pytest.raises(SettingsError, match="at most 50"):
        chosen_objects({"object_ids": too_many})
