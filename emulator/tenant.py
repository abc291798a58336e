"""In-memory tenant with a change log, answering Microsoft Graph delta queries.

Every change takes the next value of one global, monotonically increasing sequence. Each kind
(users, groups) has an append-only log of entries; an entry is the full state of one object after
one change (present, soft-deleted or hard-deleted) and points to the sequence of the next change
of the same object. A round of a delta query is the range (t, s] of the sequence: t is where the
client's delta link was issued, s is the sequence when the round started. The round returns, in
log order, every entry of that range that is the last change of its object up to s. Entries are
never modified except for their forward pointer, which only ever receives values larger than the
sequence at that moment, so a round reads the same entries in the same order however many changes
happen while the client pages through it: no gaps, no duplicates, later changes wait for the next
round. Paging resumes at a log position carried in the token, so a page costs work proportional to
the page (plus superseded entries it skips), never to the tenant.

Group membership is kept per group as the current members plus an append-only list of membership
changes; the members of a group as of s are the current ones with the changes after s undone, in
the order the memberships were made.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

USERS = "users"
GROUPS = "groups"
DEVICES = "devices"
SERVICE_PRINCIPALS = "servicePrincipals"
CONTACTS = "contacts"  # organizational contacts (orgContact)
KINDS = (USERS, GROUPS)  # what the Graph API serves: users and groups, their delta queries and members
# every kind of directory object the store holds; all of them can be members of groups
OBJECT_KINDS = (USERS, GROUPS, DEVICES, SERVICE_PRINCIPALS, CONTACTS)
MEMBER_ONLY_KINDS = (DEVICES, SERVICE_PRINCIPALS, CONTACTS)  # kinds that are only ever members
ODATA_TYPE = {
    USERS: "#microsoft.graph.user",
    GROUPS: "#microsoft.graph.group",
    DEVICES: "#microsoft.graph.device",
    SERVICE_PRINCIPALS: "#microsoft.graph.servicePrincipal",
    CONTACTS: "#microsoft.graph.orgContact",
}
KIND_OF_TYPE = {v: k for k, v in ODATA_TYPE.items()}

PRESENT = "present"
SOFT_DELETED = "softDeleted"
HARD_DELETED = "deleted"
_REMOVED_REASON = {SOFT_DELETED: "changed", HARD_DELETED: "deleted"}

_TOKEN_VERSION = 1

# passwordProfile (Graph v1.0 user resource): returned only on $select, and its password always reads as
# null; setting a password moves lastPasswordChangeDateTime. The store never keeps a password.
PASSWORD_PROFILE = "passwordProfile"
PASSWORD_FLAGS = ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa")


def _keep_password_profile(data: dict, now: Callable[[], float] | None = None) -> None:
    """Keep only the flags of a user's passwordProfile; with `now`, a password in it (a create or an
    update that sets one) moves lastPasswordChangeDateTime to that time."""
    profile = data.get(PASSWORD_PROFILE)
    if not isinstance(profile, dict):
        return
    if now is not None and profile.get("password"):
        data["lastPasswordChangeDateTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now()))
    data[PASSWORD_PROFILE] = {flag: bool(profile.get(flag)) for flag in PASSWORD_FLAGS}


class GraphError(Exception):
    """An error to be answered in Graph's shape: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found(kind: str, oid: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{oid}' does not exist or one of its queried reference-property objects are not present.",
    )


@dataclass
class Settings:
    page_size: int = 100
    members_page_size: int = 1000
    delta_link_max_age_seconds: float = 7 * 24 * 3600.0

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in ("page_size", "members_page_size", "delta_link_max_age_seconds"):
                raise GraphError(400, "Request_BadRequest", f"Unknown setting '{key}'.")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GraphError(400, "Request_BadRequest", f"Setting '{key}' must be a number.")
            if key in ("page_size", "members_page_size"):
                if int(value) != value or value < 1:
                    raise GraphError(400, "Request_BadRequest", f"Setting '{key}' must be a positive integer.")
                value = int(value)
            elif value < 0:
                raise GraphError(400, "Request_BadRequest", f"Setting '{key}' must not be negative.")
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Entry:
    __slots__ = ("born", "data", "next_seq", "oid", "prev", "seq", "status")

    def __init__(self, seq: int, oid: str, status: str, data: dict | None, born: int, prev: _Entry | None):
        self.seq = seq
        self.oid = oid
        self.status = status
        self.data = data
        self.born = born  # sequence at which the object last became present
        self.prev = prev  # the object's entry before this one
        self.next_seq: int | None = None

    def as_of(self, t: int) -> _Entry | None:
        """The object's entry that was the latest at sequence t (None: the object did not exist yet)."""
        entry: _Entry | None = self
        while entry is not None and entry.seq > t:
            entry = entry.prev
        return entry


class _Log:
    __slots__ = ("entries", "latest", "seqs")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.seqs: list[int] = []
        self.latest: dict[str, _Entry] = {}


@dataclass
class Page:
    """One page of a listing or of a delta round. Exactly one of next_token/delta_token is set for delta."""

    items: list[dict]
    next_token: str | None = None
    delta_token: str | None = None


def encode_token(payload: dict) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise GraphError(400, "Request_BadRequest", "The token in the request is malformed.") from exc
    if not isinstance(payload, dict) or payload.get("v") != _TOKEN_VERSION:
        raise GraphError(400, "Request_BadRequest", "The token in the request is malformed.")
    return payload


def parse_select(select: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Turn a $select value into a tuple of property names (None means every property)."""
    if select is None:
        return None
    if isinstance(select, str):
        parts = select.split(",")
    else:
        parts = list(select)
    names = []
    for part in parts:
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return tuple(names) if names else None


class Tenant:
    """The tenant's users, groups and memberships, with the change log behind delta queries."""

    def __init__(
        self,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        info: dict | None = None,
    ):
        self.settings = settings or Settings()
        self.clock = clock
        self.info: dict = dict(info or {})
        self._lock = threading.RLock()
        self._seq = 0
        self._ordinal = 0
        self._logs = {kind: _Log() for kind in OBJECT_KINDS}
        # group id -> {member id: (member kind, ordinal)}, in ordinal order
        self._members: dict[str, dict[str, tuple[str, int]]] = {}
        # group id -> [(seq, member id, member kind, added, ordinal)], in seq order
        self._mchanges: dict[str, list[tuple[str, str, str, bool, int]]] = {}
        # member id -> group ids it belongs to
        self._member_of: dict[str, set[str]] = {}
        # soft-deleted object id -> group ids it was removed from (re-added on restore)
        self._parked_memberships: dict[str, list[str]] = {}
        # lower-cased userPrincipalName -> id of the user that last took it
        self._upn_index: dict[str, str] = {}
        self._cache: OrderedDict[tuple, list] = OrderedDict()
        self._cache_size = 512
        # Tokens name the tenant instance that issued them: after a restart they are unknown sync states.
        self.epoch = uuid.uuid4().hex[:12]

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Tenant:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        tenant = cls(**kwargs)
        tenant.load(doc, copy=False)
        return tenant

    def load(self, doc: dict, copy: bool = True) -> None:
        """Load a tenant document: {"tenant": {...}?, "users": [...], "groups": [...]}, and optionally
        "devices", "servicePrincipals" and "contacts" (organizational contacts), which can be members.
        An object with a "deletedDateTime" is loaded soft-deleted.

        With copy=False the document's objects are taken over (and the groups' "members" removed).
        """
        with self._lock:
            if doc.get("tenant"):
                merged = dict(doc["tenant"])
                merged.update(self.info)
                self.info = merged
            group_ids = {g["id"] for g in doc.get("groups", []) if g.get("id")}
            for kind in OBJECT_KINDS:
                if kind == GROUPS:
                    continue
                for obj in doc.get(kind, []):
                    data = dict(obj) if copy else obj
                    data.setdefault("id", str(uuid.uuid4()))
                    self._create(kind, data)
            pending: list[tuple[str, list]] = []
            for group in doc.get("groups", []):
                data = dict(group) if copy else group
                members = data.pop("members", None) or []
                data.setdefault("id", str(uuid.uuid4()))
                self._create(GROUPS, data)
                pending.append((data["id"], members))
            for gid, members in pending:
                for member in members:
                    mid, mkind = self._member_ref(member, group_ids)
                    if mid != gid:
                        self._attach(gid, mid, mkind)
            # Objects the document names as deleted (Graph's deletedDateTime) are soft-deleted ones: restorable,
            # absent from full rounds, their memberships parked until a restore.
            for kind in OBJECT_KINDS:
                for oid, entry in list(self._logs[kind].latest.items()):
                    if entry.status == PRESENT and entry.data.get("deletedDateTime"):
                        self.delete(kind, oid)

    def _member_ref(self, member: Any, group_ids: set[str] | None = None) -> tuple[str, str]:
        if isinstance(member, str):
            mid, otype = member, None
        elif isinstance(member, dict) and member.get("id"):
            mid, otype = str(member["id"]), member.get("@odata.type")
        else:
            raise GraphError(400, "Request_BadRequest", "A member needs an 'id'.")
        if otype:
            if otype not in KIND_OF_TYPE:
                raise GraphError(400, "Request_BadRequest", f"Unsupported member type '{otype}'.")
            mkind = KIND_OF_TYPE[otype]
            entry = self._logs[mkind].latest.get(mid)
            if (entry is None or entry.status != PRESENT) and not (group_ids and mid in group_ids):
                raise _not_found(mkind, mid)
            return mid, mkind
        for kind in OBJECT_KINDS:
            entry = self._logs[kind].latest.get(mid)
            if entry is not None and entry.status == PRESENT:
                return mid, kind
        if group_ids and mid in group_ids:
            return mid, GROUPS
        raise _not_found(USERS, mid)

    # ------------------------------------------------------------------ internals

    @property
    def sequence(self) -> int:
        return self._seq

    def _append(self, kind: str, oid: str, status: str, data: dict | None, born: int | None) -> _Entry:
        self._seq += 1
        seq = self._seq
        log = self._logs[kind]
        previous = log.latest.get(oid)
        entry = _Entry(seq, oid, status, data, seq if born is None else born, previous)
        if previous is not None:
            previous.next_seq = seq
        log.entries.append(entry)
        log.seqs.append(seq)
        log.latest[oid] = entry
        return entry

    def _present(self, kind: str, oid: str) -> _Entry:
        entry = self._logs[kind].latest.get(oid)
        if entry is None or entry.status != PRESENT:
            raise _not_found(kind, oid)
        return entry

    def _create(self, kind: str, data: dict) -> _Entry:
        oid = str(data["id"])
        data["id"] = oid
        for other in OBJECT_KINDS:
            if oid in self._logs[other].latest:
                raise GraphError(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    f"Another object with the same value for property id already exists: '{oid}'.",
                )
        if kind == USERS:
            self._check_upn(data.get("userPrincipalName"), oid)
            _keep_password_profile(data)
        entry = self._append(kind, oid, PRESENT, data, None)
        if kind == GROUPS:
            self._members[oid] = {}
            self._mchanges[oid] = []
        return entry

    def _check_upn(self, upn: Any, oid: str) -> None:
        if not upn:
            return
        upn_l = str(upn).lower()
        index = self._upn_index
        owner = index.get(upn_l)
        if owner is not None and owner != oid:
            entry = self._logs[USERS].latest.get(owner)
            if entry is not None and entry.status == PRESENT and str(entry.data.get("userPrincipalName", "")).lower() == upn_l:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "Another object with the same value for property userPrincipalName already exists.",
                )
        index[upn_l] = oid

    def _attach(self, gid: str, mid: str, mkind: str) -> None:
        """Make mid a member of gid without recording a change (the group's creation covers it)."""
        if mid in self._members[gid]:
            return
        self._ordinal += 1
        self._members[gid][mid] = (mkind, self._ordinal)
        self._member_of.setdefault(mid, set()).add(gid)

    def _record_member(self, gid: str, mid: str, mkind: str, added: bool) -> None:
        """Change one membership of a present group: a new entry for the group and a change record."""
        current = self._logs[GROUPS].latest[gid]
        if current.status == PRESENT:
            seq = self._append(GROUPS, gid, PRESENT, current.data, current.born).seq
        else:
            # A soft-deleted group keeps its members; one of them is going away. The change is kept
            # (for the group's members as of a sequence) but the group stays deleted.
            self._seq += 1
            seq = self._seq
        members = self._members[gid]
        if added:
            self._ordinal += 1
            ordinal = self._ordinal
            members[mid] = (mkind, ordinal)
            self._member_of.setdefault(mid, set()).add(gid)
        else:
            mkind, ordinal = members.pop(mid)
            parents = self._member_of.get(mid)
            if parents is not None:
                parents.discard(gid)
                if not parents:
                    del self._member_of[mid]
        self._mchanges[gid].append((seq, mid, mkind, added, ordinal))

    def _detach_from_parents(self, oid: str) -> list[str]:
        parents = sorted(self._member_of.get(oid, ()))
        for gid in parents:
            self._record_member(gid, oid, self._members[gid][oid][0], False)
        return parents

    def _drop_own_members(self, gid: str, seq: int) -> None:
        """A group is gone for good: record the removal of all its members at the deletion's sequence."""
        members = self._members.get(gid, {})
        changes = self._mchanges.setdefault(gid, [])
        for mid, (mkind, ordinal) in list(members.items()):
            changes.append((seq, mid, mkind, False, ordinal))
            parents = self._member_of.get(mid)
            if parents is not None:
                parents.discard(gid)
                if not parents:
                    del self._member_of[mid]
        members.clear()

    def _cached(self, key: tuple, build: Callable[[], list]) -> list:
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
            return value
        value = build()
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def _members_as_of(self, gid: str, s: int) -> list[tuple[str, str]]:
        """[(member id, member kind)] of group gid as of sequence s, in membership order."""

        def build() -> list[tuple[str, str]]:
            current = self._members.get(gid, {})
            changes = self._mchanges.get(gid, [])
            j = bisect_right(changes, s, key=lambda c: c[0])
            if j == len(changes):
                return [(mid, v[0]) for mid, v in current.items()]
            override: dict[str, tuple[str, int] | None] = {}
            for _seq, mid, mkind, added, ordinal in reversed(changes[j:]):
                override[mid] = None if added else (mkind, ordinal)
            rows = [(v[1], mid, v[0]) for mid, v in current.items() if mid not in override]
            rows.extend((v[1], mid, v[0]) for mid, v in override.items() if v is not None)
            rows.sort()
            return [(mid, mkind) for _o, mid, mkind in rows]

        return self._cached(("asof", gid, s), build)

    def _members_delta(self, entry: _Entry, t: int | None, s: int) -> list[dict]:
        """The rendered members@delta of a group entry for the round (t, s]."""
        gid = entry.oid
        if t is None:
            return self._cached(
                ("full", gid, s),
                lambda: [{"@odata.type": ODATA_TYPE[k], "id": mid} for mid, k in self._members_as_of(gid, s)],
            )
        if entry.born > t:
            # Created or restored since t: every member, plus removals of members it had at t (if it
            # existed then), so a client that never saw the removal of the group ends up right too.
            def reborn() -> list[dict]:
                now = self._members_as_of(gid, s)
                out = [{"@odata.type": ODATA_TYPE[k], "id": mid} for mid, k in now]
                present = {mid for mid, _k in now}
                for mid, k in self._members_as_of(gid, t):
                    if mid not in present:
                        out.append({"@odata.type": ODATA_TYPE[k], "id": mid, "@removed": {"reason": "deleted"}})
                return out

            return self._cached(("reborn", gid, t, s), reborn)

        def build() -> list[dict]:
            changes = self._mchanges.get(gid, [])
            lo = bisect_right(changes, t, key=lambda c: c[0])
            hi = bisect_right(changes, s, key=lambda c: c[0])
            last: dict[str, tuple[str, bool]] = {}
            for _seq, mid, mkind, added, _ordinal in changes[lo:hi]:
                last.pop(mid, None)
                last[mid] = (mkind, added)
            out = []
            for mid, (mkind, added) in last.items():
                item = {"@odata.type": ODATA_TYPE[mkind], "id": mid}
                if not added:
                    item["@removed"] = {"reason": "deleted"}
                out.append(item)
            return out

        return self._cached(("delta", gid, t, s), build)

    def _manager_ref(self, data: dict | None) -> dict | None:
        """The user's manager as a delta reference {"@odata.type", "id"}, or None."""
        manager = (data or {}).get("manager")
        if isinstance(manager, dict):
            mid, otype = manager.get("id"), manager.get("@odata.type")
        else:
            mid, otype = manager, None
        if not mid:
            return None
        mid = str(mid)
        if otype not in KIND_OF_TYPE:
            otype = ODATA_TYPE[CONTACTS] if mid in self._logs[CONTACTS].latest else ODATA_TYPE[USERS]
        return {"@odata.type": otype, "id": mid}

    def _manager_delta(self, entry: _Entry, t: int | None) -> list[dict]:
        """manager@delta of a present user entry for a round since t (None: a full round).

        A full round names the manager (if any). A round since t names a manager that changed: the
        new one, or, when it was cleared, the one the user had at t with "@removed": {"reason":
        "deleted"}. An unchanged manager is left out, except for a user created or restored since t
        (whose earlier state the client may have dropped), which names its manager as a full round does.
        """
        now = self._manager_ref(entry.data)
        if t is None:
            return [now] if now else []
        then_entry = entry.as_of(t)
        then = self._manager_ref(then_entry.data) if then_entry is not None else None
        if entry.born <= t and then is not None and now is not None and now["id"] == then["id"]:
            return []
        if now is not None:
            return [now]
        return [{**then, "@removed": {"reason": "deleted"}}] if then is not None else []

    @staticmethod
    def _render(entry: _Entry, select: tuple[str, ...] | None) -> dict:
        if entry.status != PRESENT:
            return {"id": entry.oid, "@removed": {"reason": _REMOVED_REASON[entry.status]}}
        data = entry.data
        if select is None:
            item = dict(data)
            item.pop(PASSWORD_PROFILE, None)  # returned only on $select
            return item
        item = {"id": entry.oid}
        for name in select:
            if name == PASSWORD_PROFILE:
                profile = data.get(name)
                item[name] = {"password": None, **profile} if isinstance(profile, dict) else None
            elif name != "id" and name != "members":
                item[name] = data.get(name)
        return item

    def _token(self, **payload: Any) -> str:
        payload["v"] = _TOKEN_VERSION
        payload["e"] = self.epoch
        payload["i"] = round(self.clock(), 3)
        return encode_token(payload)

    def _read_token(self, token: str, kind: str, op: tuple[str, ...]) -> dict:
        payload = decode_token(token)
        if payload.get("k") != kind or payload.get("o") not in op:
            raise GraphError(400, "Request_BadRequest", "The token does not belong to this request.")
        issued = payload.get("i")
        if not isinstance(issued, (int, float)):
            raise GraphError(400, "Request_BadRequest", "The token in the request is malformed.")
        if payload.get("e") != self.epoch or self.clock() - issued > self.settings.delta_link_max_age_seconds:
            raise GraphError(
                400,
                "syncStateNotFound",
                "The sync state of this delta link has expired or is unknown. Start over without a token (full sync).",
            )
        return payload

    # ------------------------------------------------------------------ reads

    def delta(
        self,
        kind: str,
        token: str | None = None,
        select: str | Iterable[str] | None = None,
        page_size: int | None = None,
    ) -> Page:
        """One page of a delta round.

        token: None to start a full round; a delta token (from a delta link) to start a round of the
        changes since it; "latest" for a delta token at the current sequence; a skip token (from a
        next link) to continue a round. select: the $select of the request; a token keeps the
        $select of the request that started its round unless the request names one.
        """
        if kind not in KINDS:
            raise GraphError(400, "Request_BadRequest", f"Unknown resource '{kind}'.")
        sel = parse_select(select)
        with self._lock:
            if token == "latest":
                return Page([], delta_token=self._token(k=kind, o="d", s=self._seq, sel=_sel_out(sel)))
            t: int | None
            if token is None:
                t, s, pos, moff = None, self._seq, 0, 0
            else:
                payload = self._read_token(token, kind, ("d", "p"))
                if sel is None and payload.get("sel") is not None:
                    sel = tuple(payload["sel"])
                if payload["o"] == "d":
                    t = int(payload["s"])
                    s = self._seq
                    pos = bisect_right(self._logs[kind].seqs, t)
                    moff = 0
                else:
                    t = payload["t"]
                    s, pos, moff = int(payload["s"]), int(payload["p"]), int(payload["m"])
            return self._delta_page(kind, t, s, pos, moff, sel, page_size or self.settings.page_size)

    def _delta_page(
        self, kind: str, t: int | None, s: int, pos: int, moff: int, sel: tuple[str, ...] | None, page_size: int
    ) -> Page:
        log = self._logs[kind]
        entries = log.entries
        n = len(entries)
        want_members = kind == GROUPS and (sel is None or "members" in sel)
        want_manager = kind == USERS and (sel is None or "manager" in sel)
        cap = self.settings.members_page_size
        items: list[dict] = []
        i = pos
        while i < n:
            entry = entries[i]
            if entry.seq > s:
                break
            nxt = entry.next_seq
            if (nxt is not None and nxt <= s) or (t is None and entry.status != PRESENT):
                i += 1
                moff = 0
                continue
            if len(items) >= page_size:
                return Page(items, next_token=self._token(k=kind, o="p", t=t, s=s, p=i, m=moff, sel=_sel_out(sel)))
            item = self._render(entry, sel)
            if kind == USERS and entry.status == PRESENT:
                # Graph's delta carries relationships as annotations only: manager@delta, never a manager object.
                item.pop("manager", None)
                if want_manager:
                    mdelta = self._manager_delta(entry, t)
                    if mdelta:
                        item["manager@delta"] = mdelta
            if want_members and entry.status == PRESENT:
                mdelta = self._members_delta(entry, t, s)
                chunk = mdelta[moff : moff + cap]
                if chunk:
                    item["members@delta"] = chunk
                if moff + cap < len(mdelta):
                    items.append(item)
                    return Page(
                        items, next_token=self._token(k=kind, o="p", t=t, s=s, p=i, m=moff + cap, sel=_sel_out(sel))
                    )
            items.append(item)
            moff = 0
            i += 1
        return Page(items, delta_token=self._token(k=kind, o="d", s=s, sel=_sel_out(sel)))

    def list_page(
        self,
        kind: str,
        token: str | None = None,
        top: int | None = None,
        select: str | Iterable[str] | None = None,
    ) -> Page:
        """One page of GET /users or /groups: the present objects as of the listing's first page."""
        if kind not in KINDS:
            raise GraphError(400, "Request_BadRequest", f"Unknown resource '{kind}'.")
        sel = parse_select(select)
        with self._lock:
            if token is None:
                s, pos = self._seq, 0
                top = top or self.settings.page_size
            else:
                payload = self._read_token(token, kind, ("l",))
                s, pos = int(payload["s"]), int(payload["p"])
                top = top or int(payload["n"])
                if sel is None and payload.get("sel") is not None:
                    sel = tuple(payload["sel"])
            if sel is not None:
                sel = tuple(name for name in sel if name != "members")
            entries = self._logs[kind].entries
            items: list[dict] = []
            i = pos
            n = len(entries)
            while i < n:
                entry = entries[i]
                if entry.seq > s:
                    break
                nxt = entry.next_seq
                if (nxt is not None and nxt <= s) or entry.status != PRESENT:
                    i += 1
                    continue
                if len(items) >= top:
                    return Page(items, next_token=self._token(k=kind, o="l", s=s, p=i, n=top, sel=_sel_out(sel)))
                items.append(self._render(entry, sel))
                i += 1
            return Page(items)

    def members_page(
        self,
        gid: str,
        token: str | None = None,
        top: int | None = None,
        select: str | Iterable[str] | None = None,
    ) -> Page:
        """One page of GET /groups/{id}/members: the members as of the listing's first page."""
        sel = parse_select(select)
        with self._lock:
            self._present(GROUPS, gid)
            if token is None:
                s, off = self._seq, 0
                top = top or self.settings.page_size
            else:
                payload = self._read_token(token, GROUPS, ("m",))
                if payload.get("g") != gid:
                    raise GraphError(400, "Request_BadRequest", "The token does not belong to this request.")
                s, off = int(payload["s"]), int(payload["p"])
                top = top or int(payload["n"])
                if sel is None and payload.get("sel") is not None:
                    sel = tuple(payload["sel"])
            members = self._members_as_of(gid, s)
            items = []
            for mid, mkind in members[off : off + top]:
                entry = self._logs[mkind].latest.get(mid)
                if entry is not None and entry.status == PRESENT:
                    item = {"@odata.type": ODATA_TYPE[mkind]}
                    item.update(self._render(entry, sel))
                else:
                    item = {"@odata.type": ODATA_TYPE[mkind], "id": mid}
                items.append(item)
            if off + top < len(members):
                return Page(items, next_token=self._token(k=GROUPS, o="m", g=gid, s=s, p=off + top, n=top, sel=_sel_out(sel)))
            return Page(items)

    def get(self, kind: str, oid: str, select: str | Iterable[str] | None = None) -> dict:
        with self._lock:
            entry = self._present(kind, oid)
            sel = parse_select(select)
            if sel is not None:
                sel = tuple(name for name in sel if name != "members")
            return self._render(entry, sel)

    def members_of(self, gid: str) -> list[dict]:
        """Current members of a group: [{"@odata.type", "id"}]."""
        with self._lock:
            self._present(GROUPS, gid)
            return [{"@odata.type": ODATA_TYPE[k], "id": mid} for mid, (k, _o) in self._members[gid].items()]

    def deleted_items(self) -> dict[str, list[dict]]:
        """The soft-deleted (restorable) objects of every kind, as Graph's directory/deletedItems lists them."""
        with self._lock:
            return {
                kind: [dict(e.data) for e in self._logs[kind].latest.values() if e.status == SOFT_DELETED]
                for kind in OBJECT_KINDS
            }

    def status(self, kind: str, oid: str) -> str | None:
        """present, softDeleted, deleted, or None for an unknown id."""
        with self._lock:
            entry = self._logs[kind].latest.get(oid)
            return None if entry is None else entry.status

    def object_sequence(self, kind: str, oid: str) -> int:
        """The sequence of the object's last change (membership changes count for groups)."""
        with self._lock:
            entry = self._logs[kind].latest.get(oid)
            if entry is None:
                raise _not_found(kind, oid)
            return entry.seq

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {"sequence": self._seq}
            for kind in OBJECT_KINDS:
                present = soft = hard = 0
                for entry in self._logs[kind].latest.values():
                    if entry.status == PRESENT:
                        present += 1
                    elif entry.status == SOFT_DELETED:
                        soft += 1
                    else:
                        hard += 1
                out[kind] = present
                out[f"{kind}_soft_deleted"] = soft
                out[f"{kind}_hard_deleted"] = hard
            out["memberships"] = sum(len(m) for m in self._members.values())
            out["log_entries"] = sum(len(log.entries) for log in self._logs.values())
            return out

    def export(self) -> dict:
        """The current state in the tenant file's shape (present objects only)."""
        with self._lock:
            doc: dict[str, Any] = {}
            if self.info:
                doc["tenant"] = dict(self.info)
            doc["users"] = [dict(e.data) for e in self._logs[USERS].latest.values() if e.status == PRESENT]
            for kind in MEMBER_ONLY_KINDS:
                objects = [dict(e.data) for e in self._logs[kind].latest.values() if e.status == PRESENT]
                if objects:
                    doc[kind] = objects
            groups = []
            for entry in self._logs[GROUPS].latest.values():
                if entry.status == PRESENT:
                    group = dict(entry.data)
                    group["members"] = [
                        {"@odata.type": ODATA_TYPE[k], "id": mid} for mid, (k, _o) in self._members[entry.oid].items()
                    ]
                    groups.append(group)
            doc["groups"] = groups
            return doc

    # ------------------------------------------------------------------ writes

    def create(self, kind: str, data: dict) -> dict:
        if kind not in OBJECT_KINDS:
            raise GraphError(400, "Request_BadRequest", f"Unknown resource '{kind}'.")
        if not isinstance(data, dict):
            raise GraphError(400, "Request_BadRequest", "The body must be a JSON object.")
        data = dict(data)
        members = data.pop("members", None) if kind == GROUPS else None
        if kind != GROUPS and "members" in data:
            raise GraphError(
                400, "Request_BadRequest", "Users have no members." if kind == USERS else "Only groups have members."
            )
        if not data.get("id"):
            data["id"] = str(uuid.uuid4())
        if kind == USERS:
            _keep_password_profile(data, self.clock)
        with self._lock:
            refs = [self._member_ref(m) for m in (members or [])]
            if any(mid == data["id"] for mid, _k in refs):
                raise GraphError(400, "Request_BadRequest", "A group cannot be a member of itself.")
            entry = self._create(kind, data)
            for mid, mkind in refs:
                self._attach(entry.oid, mid, mkind)
            return dict(entry.data)

    def update(self, kind: str, oid: str, patch: dict) -> dict:
        if not isinstance(patch, dict):
            raise GraphError(400, "Request_BadRequest", "The body must be a JSON object.")
        if "members" in patch:
            raise GraphError(400, "Request_BadRequest", "Change members through the members endpoints.")
        if "id" in patch and str(patch["id"]) != oid:
            raise GraphError(400, "Request_BadRequest", "The id of an object cannot be changed.")
        with self._lock:
            entry = self._present(kind, oid)
            data = dict(entry.data)
            data.update(patch)
            data["id"] = oid
            if kind == USERS:
                _keep_password_profile(data, self.clock)
            if kind == USERS and data.get("userPrincipalName") != entry.data.get("userPrincipalName"):
                self._check_upn(data.get("userPrincipalName"), oid)
            self._append(kind, oid, PRESENT, data, entry.born)
            return dict(data)

    def delete(self, kind: str, oid: str, permanent: bool = False) -> None:
        """Soft delete (restorable; delta reason "changed") or, with permanent, hard delete ("deleted")."""
        with self._lock:
            entry = self._logs[kind].latest.get(oid)
            if entry is None or entry.status == HARD_DELETED:
                raise _not_found(kind, oid)
            if entry.status == SOFT_DELETED:
                if not permanent:
                    raise _not_found(kind, oid)
                self._parked_memberships.pop(oid, None)
                gone = self._append(kind, oid, HARD_DELETED, None, entry.born)
                if kind == GROUPS:
                    self._drop_own_members(oid, gone.seq)
                return
            parents = self._detach_from_parents(oid)
            if permanent:
                gone = self._append(kind, oid, HARD_DELETED, None, entry.born)
                if kind == GROUPS:
                    self._drop_own_members(oid, gone.seq)
            else:
                self._parked_memberships[oid] = parents
                self._append(kind, oid, SOFT_DELETED, entry.data, entry.born)

    def restore(self, kind: str, oid: str) -> dict:
        with self._lock:
            entry = self._logs[kind].latest.get(oid)
            if entry is None or entry.status != SOFT_DELETED:
                raise _not_found(kind, oid)
            if kind == USERS:
                self._check_upn(entry.data.get("userPrincipalName"), oid)
            data = entry.data
            if data.get("deletedDateTime"):
                data = {**data, "deletedDateTime": None}
            self._append(kind, oid, PRESENT, data, None)
            for gid in self._parked_memberships.pop(oid, []):
                group = self._logs[GROUPS].latest.get(gid)
                if group is not None and group.status == PRESENT and oid not in self._members[gid]:
                    self._record_member(gid, oid, kind, True)
            return dict(data)

    def add_member(self, gid: str, member_id: str, odata_type: str | None = None) -> dict:
        with self._lock:
            self._present(GROUPS, gid)
            ref: dict[str, Any] = {"id": member_id}
            if odata_type:
                ref["@odata.type"] = odata_type
            mid, mkind = self._member_ref(ref)
            if mid == gid:
                raise GraphError(400, "Request_BadRequest", "A group cannot be a member of itself.")
            if mid in self._members[gid]:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following modified properties: 'members'.",
                )
            self._record_member(gid, mid, mkind, True)
            return {"@odata.type": ODATA_TYPE[mkind], "id": mid}

    def remove_member(self, gid: str, member_id: str) -> None:
        with self._lock:
            self._present(GROUPS, gid)
            if member_id not in self._members[gid]:
                raise _not_found(GROUPS, member_id)
            self._record_member(gid, member_id, self._members[gid][member_id][0], False)


def _sel_out(sel: tuple[str, ...] | None) -> list[str] | None:
    return list(sel) if sel is not None else None
