"""Hostile tenants and seeded change batches: deterministic, covering every character class, valid for Graph."""

from __future__ import annotations

import json
import re
import unicodedata
from email.message import Message
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.__main__ import main
from emulator.admin import AdminError, EmulatorAdmin
from emulator.admin_api import AdminApi
from emulator.faults import FaultSet
from emulator.generate import dumps_tenant, generate_tenant, write_tenant
from emulator.hostile import (
    CHANGE_KINDS,
    LIMITS,
    MAIL_NICKNAME_SPECIALS,
    NAME_SPECIALS,
    UPN_SPECIALS,
    random_changes,
    utf16_len,
    valid_mail_nickname,
    valid_upn,
)
from emulator.listeners import Stats
from emulator.tenant import GraphError, Tenant
from emulator.wire import Request

DOMAIN = "corp.example.test"
TYPES = {"#microsoft.graph.user", "#microsoft.graph.group", "#microsoft.graph.device",
         "#microsoft.graph.servicePrincipal", "#microsoft.graph.orgContact"}
SEEDS = st.integers(0, 2**32 - 1)
FEW = settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def account_name(nick: str) -> str:
    """The account name a nickname implies once the characters sAMAccountName and UPNs cannot hold are dropped."""
    return re.sub(r"[^A-Za-z0-9._-]", "", nick).strip(".").lower()


def display_names(doc) -> list[str]:
    return [o["displayName"] for kind in ("users", "devices", "servicePrincipals", "contacts", "groups") for o in doc[kind]]


def nesting_depth(groups) -> int:
    children = {g["id"]: [m["id"] for m in g["members"] if m["@odata.type"] == "#microsoft.graph.group"] for g in groups}

    def depth(gid, seen=()):
        assert gid not in seen, "a cycle of groups"
        return 1 + max((depth(c, (*seen, gid)) for c in children[gid]), default=0)

    return max((depth(g) for g in children), default=0)


def manager_chain(users) -> int:
    boss = {u["id"]: (u["manager"] or {}).get("id") for u in users}

    def length(uid, seen=()):
        assert uid not in seen, "a cycle of managers"
        return 1 + (length(boss[uid], (*seen, uid)) if boss.get(uid) in boss else 0)

    return max((length(u) for u in boss), default=0)


def case_only_pairs(values) -> bool:
    by_fold: dict[str, set[str]] = {}
    for v in values:
        by_fold.setdefault(v.casefold(), set()).add(v)
    return any(len(spellings) > 1 for spellings in by_fold.values())


def windows_only_pairs(values) -> bool:
    """Values Windows AD takes for one another (without accents and width) that case folding keeps apart."""
    by_key: dict[str, set[str]] = {}
    for v in values:
        key = "".join(c for c in unicodedata.normalize("NFKD", v) if not unicodedata.combining(c)).casefold()
        by_key.setdefault(key, set()).add(unicodedata.normalize("NFC", v).casefold())
    return any(len(spellings) > 1 for spellings in by_key.values())


@FEW
@given(seed=SEEDS)
def test_every_hostile_class_is_there_whatever_the_seed(seed):
    doc = generate_tenant(48, 14, seed=seed, domain=DOMAIN, hostile=True)
    users, groups = doc["users"], doc["groups"]
    names = display_names(doc)
    text = "".join(names)
    assert [c for c in NAME_SPECIALS if c not in text] == []  # DN, sAMAccountName and LDAP filter specials, NUL
    assert any(n.startswith(" ") for n in names) and any(n.endswith(" ") for n in names)
    assert any(n.startswith("#") for n in names)
    assert any(ord(ch) > 0xFFFF for ch in text)  # astral planes
    assert any(unicodedata.combining(ch) for ch in text)
    assert any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)
    assert any(ch in text for ch in "\u202e\u200f\u2066")  # bidi controls
    assert any(ch in text for ch in "\u200b\u200c\u200d\ufeff\u2060")  # zero-width characters
    assert any(utf16_len(n) > 64 for n in names) and any(utf16_len(n) == LIMITS["displayName"] for n in names)
    long_values = [u["streetAddress"] for u in users if u["streetAddress"]] + [g["description"] for g in groups
                                                                                if g["description"]]
    assert any(utf16_len(v) > 256 for v in long_values)
    user_names, group_names = [u["displayName"] for u in users], [g["displayName"] for g in groups]
    assert len(set(user_names)) < len(user_names) and len(set(group_names)) < len(group_names)
    assert set(user_names) & set(group_names)
    assert case_only_pairs(user_names) and case_only_pairs(group_names)
    assert any(unicodedata.normalize("NFC", n) != n for n in names)  # the same name, decomposed
    assert windows_only_pairs(names)  # "Zoë"/"Zoe", "Anna"/full-width "Ａｎｎａ"
    nicks = [u["mailNickname"] for u in users]
    assert [c for c in MAIL_NICKNAME_SPECIALS if c not in "".join(nicks)] == []
    assert len(set(nicks)) < len(nicks) and case_only_pairs(nicks)
    assert set(nicks) & {g["mailNickname"] for g in groups}
    assert any(len(n) == LIMITS["mailNickname"] for n in nicks)
    locals_ = [u["userPrincipalName"].rsplit("@", 1) for u in users]
    assert [c for c in UPN_SPECIALS if c not in "".join(loc for loc, _d in locals_)] == []
    assert any(len(loc) == 64 for loc, _d in locals_)
    implied = {account_name(o["mailNickname"]): o["id"] for o in users + groups}
    assert any(d == DOMAIN and implied.get(loc.lower()) not in (None, u["id"])
               for (loc, d), u in zip(locals_, users, strict=True))
    assert nesting_depth(groups) >= 4
    assert max(len(g["members"]) for g in groups) >= len(users)
    assert {m["@odata.type"] for g in groups for m in g["members"]} == TYPES
    assert any(not g["members"] for g in groups)
    assert manager_chain(users) >= 5
    assert any((u["manager"] or {}).get("@odata.type") == "#microsoft.graph.orgContact" for u in users)
    assert sum(1 for u in users if u.get("deletedDateTime")) >= 2


@FEW
@given(seed=SEEDS, n_users=st.sampled_from([0, 1, 3, 12, 48, 130]), n_groups=st.sampled_from([0, 1, 5, 14, 30]))
def test_hostile_values_stay_within_what_graph_accepts(seed, n_users, n_groups):
    doc = generate_tenant(n_users, n_groups, seed=seed, domain=DOMAIN, hostile=True)
    users = doc["users"]
    upns = [u["userPrincipalName"] for u in users]
    assert all(valid_upn(upn) for upn in upns), [u for u in upns if not valid_upn(u)]
    assert len({u.lower() for u in upns}) == len(upns)
    objects = [o for kind in ("users", "devices", "servicePrincipals", "contacts", "groups") for o in doc[kind]]
    assert all(valid_mail_nickname(o["mailNickname"]) for o in objects if "mailNickname" in o)
    unified = [g["mailNickname"].lower() for g in doc["groups"] if "Unified" in g["groupTypes"]]
    assert len(set(unified)) == len(unified)
    for obj in objects:
        for prop, limit in LIMITS.items():
            value = obj.get(prop)
            assert value is None or (0 < utf16_len(value) <= limit and value.strip()), (prop, value)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # no lone surrogates
    assert len({o["id"] for o in objects}) == len(objects)
    alive = {u["id"] for u in users if not u.get("deletedDateTime")} | {c["id"] for c in doc["contacts"]}
    assert all(u["manager"]["id"] in alive for u in users if u["manager"])
    manager_chain(users)
    nesting_depth(doc["groups"])
    tenant = Tenant()
    tenant.load(json.loads(dumps_tenant(doc)))
    assert tenant.counts()["users_soft_deleted"] == sum(1 for u in users if u.get("deletedDateTime"))


def test_same_seed_same_bytes_from_the_function_and_the_command_line(tmp_path):
    a = write_tenant(tmp_path / "a.json", users=50, groups=12, seed=4, hostile=True)
    b = write_tenant(tmp_path / "b.json", users=50, groups=12, seed=4, hostile=True)
    c = write_tenant(tmp_path / "c.json", users=50, groups=12, seed=5, hostile=True)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert main(["generate", "--users", "50", "--groups", "12", "--seed", "4", "--hostile", "--out",
                 str(tmp_path / "cli.json")]) == 0
    assert (tmp_path / "cli.json").read_bytes() == a.read_bytes()
    other = generate_tenant(50, 12, seed=4, domain="ad.example.org", hostile=True)
    assert sum(u["userPrincipalName"].endswith("@ad.example.org") for u in other["users"]) > 25
    with pytest.raises(ValueError):
        generate_tenant(5, 1, domain="x" * 49 + ".test", hostile=True)


# --------------------------------------------------------------------------- change batches


class DirectAdmin(EmulatorAdmin):
    """The admin API without HTTP: the same routes and errors, served from an in-memory tenant."""

    def __init__(self, tenant: Tenant):
        super().__init__("http://in-memory")
        self.api = AdminApi(SimpleNamespace(tenant=tenant, faults=FaultSet(), stats=Stats()))

    def request(self, method: str, path: str, body: Any = None) -> Any:
        split_path, _, query = path.partition("?")
        full = "/admin" + split_path
        req = Request(method, full, {k: [v] for k, v in (p.split("=", 1) for p in query.split("&") if p)},
                      [s for s in full.strip("/").split("/") if s], Message(),
                      b"" if body is None else json.dumps(body).encode())
        try:
            reply = self.api.serve(req)
        except GraphError as exc:
            raise AdminError(exc.status, {"error": {"code": exc.code, "message": exc.message}}) from None
        return json.loads(reply.body) if reply.body else None


def hostile_admin(seed: int = 21) -> DirectAdmin:
    tenant = Tenant()
    tenant.load(generate_tenant(60, 16, seed=seed, domain=DOMAIN, hostile=True))
    return DirectAdmin(tenant)


def as_rows(changes):
    return [(c.op, c.kind, c.id, json.dumps(c.values, sort_keys=True), c.outcome) for c in changes]


@FEW
@given(seed=SEEDS)
def test_a_change_batch_is_the_same_for_the_same_seed_and_tenant(seed):
    first, second = hostile_admin(), hostile_admin()
    a, b = random_changes(first, 40, seed), random_changes(second, 40, seed)
    assert as_rows(a) == as_rows(b)
    assert first.export() == second.export()
    assert {c.op for c in a} == set(CHANGE_KINDS)
    assert {c.op for c in a if c.outcome == "applied"} == set(CHANGE_KINDS)
    for user in first.export()["users"]:
        assert valid_upn(user["userPrincipalName"]) and valid_mail_nickname(user["mailNickname"])


def test_a_change_batch_makes_and_resolves_collisions_and_keeps_managers_acyclic():
    admin = hostile_admin(3)
    changes = random_changes(admin, 150, seed=11)
    assert len(changes) == 150
    assert len(as_rows(random_changes(hostile_admin(3), 150, seed=9))) == 150
    doc = admin.export()
    manager_chain(doc["users"])  # no cycles
    names = [o["displayName"] for o in doc["users"] + doc["groups"]]
    assert len({n.casefold() for n in names}) < len(names)
    assert all(c.outcome == "applied" or c.outcome.startswith("refused: ") for c in changes)


def test_each_kind_of_change_does_what_it_says():
    admin = hostile_admin(5)
    before = admin.export()
    changes = {c.op: c for c in random_changes(admin, len(CHANGE_KINDS), seed=2)}
    assert list(changes) == list(CHANGE_KINDS)
    status = lambda c: admin.object_status(c.kind, c.id)["status"]  # noqa: E731
    into = changes["rename_into_collision"]
    assert into.values["displayName"].casefold() in {o["displayName"].casefold() for o in before["users"] + before["groups"]}
    assert status(changes["soft_delete"]) in ("softDeleted", "present")  # a later restore may bring it back
    assert status(changes["hard_delete"]) == "deleted"
    assert status(changes["restore"]) == "present"
    move = changes["membership_move"]
    assert move.values["member"]["id"] in {m["id"] for m in admin.members(move.values["to"])}
    assert move.values["member"]["id"] not in {m["id"] for m in admin.members(move.id)}
    user = next(u for u in admin.export()["users"] if u["id"] == changes["manager_change"].id)
    assert user["manager"] == changes["manager_change"].values["manager"]
    upn = changes["upn_change"]
    assert upn.outcome != "applied" or valid_upn(upn.values["userPrincipalName"])
    changed = changes["attribute_change"]
    now = next(o for o in admin.export()[changed.kind] if o["id"] == changed.id)
    assert changed.outcome == "applied" and {k: now.get(k) for k in changed.values} == changed.values


def test_a_change_batch_drives_a_running_emulator_through_its_admin_client(server):
    before = server.tenant.sequence
    changes = random_changes(EmulatorAdmin(server.graph_url), 12, seed=1)
    assert [c.op for c in changes[: len(CHANGE_KINDS)]] == list(CHANGE_KINDS)
    assert server.tenant.sequence > before
