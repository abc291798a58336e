"""The LDAP writer: applies one change at a time over its own connection (see runner.py for the pool).

Every write to an existing object addresses it by the objectGUID the plan observed (`<GUID=...>`),
never by DN text: a retried apply cannot write to another object that took the name meanwhile. A write
to an object created in the same plan (no GUID yet: a manager after the create, members of a new group)
goes to the object a read finds at the planned DN carrying the change's anchor, by its GUID (the read
batched per phase), else nowhere: when the create failed because another object took the DN, the write
would land on that object.
Idempotent by construction, so a rerun after a crash at any point converges: an add that finds
its object (with our anchor) already there, a rename whose object already sits at its new DN, a
member already present or already gone, a delete of an object already gone, all count as
`already_in_place`, not as failures. A new user's initial password meets the domain's policy, goes to
the credential sink before the account is created and only over an encrypted connection
(domain_sync.passwords). Transient errors
(busy, unavailable, timeouts, a dropped connection) are retried on a fresh connection with
backoff; permanent ones are recorded with the LDAP result code and the object's anchor.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from domain_sync.backoff import Backoff
from domain_sync.dn import (
    DNError,
    first_rdn,
    guid_dn,
    guid_from_bytes,
    normalize_dn,
    parent_dn,
    rdn_attribute,
    rdn_value,
    same_dn,
)
from domain_sync.domain import (
    ANCHOR_BINARY_ATTRIBUTES,
    DomainReadError,
    check_referrals,
    decode_anchor,
    disconnect,
    ldap_values,
    search_entries,
)
from domain_sync.errors import TransientError
from domain_sync.ldap_requests import add_entry, modify_entry
from domain_sync.passwords.policy import (
    PasswordPolicy,
    generate_password,
    read_policy,
    require_encrypted,
    unicode_pwd,
)
from domain_sync.passwords.stores import CredentialSink, InitialPassword, now
from domain_sync.records import (
    ALREADY,
    APPLIED,
    FAILED,
    ApplyResult,
    Change,
    Op,
)

log = logging.getLogger(__name__)

# LDAP result codes (RFC 4511)
SUCCESS = 0
NO_SUCH_ATTRIBUTE = 16
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
BUSY = 51
UNAVAILABLE = 52
ENTRY_ALREADY_EXISTS = 68
# Result codes worth a retry on a fresh connection. 80 (other) is not among them by default: Samba
# answers it while shutting down, but also for faults a retry repeats (setting ldap_transient_codes).
TRANSIENT_CODES = frozenset({BUSY, UNAVAILABLE})
# Tree delete (MS-ADTS 3.1.1.3.4.1.15): an AD user or group may hold child objects (devices, policies).
TREE_DELETE_CONTROL = ("1.2.840.113556.1.4.805", True, None)


# Operations that, without a GUID (an object created in this plan), first read the DN for the change's
# anchor (a phase's such changes in batches: DomainWriter.created_guids). Creates check their own DN;
# renames find their object at either DN.
ADDRESSED_BY_DN_CHECKED = frozenset({Op.MODIFY, Op.DISABLE, Op.ADD_MEMBERS, Op.REMOVE_MEMBERS, Op.DELETE})
FILTER_BATCH = 200  # names in one OR filter


def target(change: Change) -> str:
    """Where a write goes: the observed object by its GUID, or (creates) the planned DN."""
    return guid_dn(change.guid) if change.guid else change.dn


class ApplyAborted(TransientError):
    """The domain stayed unreachable past the retry budget; `summary` holds the results so far."""

    summary: ApplySummary | None = None


@dataclass
class ApplySummary:
    results: list[ApplyResult] = field(default_factory=list)
    # The position of each result's change in the applied change list (runner.apply_changes sets them).
    indexes: list[int] = field(default_factory=list)
    # Each phase run (runner.apply_changes): {"op", "changes", "seconds"}, in the order they ran.
    phases: list[dict] = field(default_factory=list)

    @property
    def writes(self) -> Counter:
        c: Counter = Counter()
        for r in self.results:
            if r.writes:
                c[f"{r.kind}.{r.op}"] += r.writes
        return c

    @property
    def statuses(self) -> Counter:
        return Counter(r.status for r in self.results)

    def failures(self) -> list[ApplyResult]:
        return [r for r in self.results if r.status == FAILED]

    def notes(self) -> list[ApplyResult]:
        """Changes that went through (or had nothing left to write) with something to say: values left out."""
        return [r for r in self.results if r.status != FAILED and r.message]

    def to_json(self) -> dict:
        return {
            "writes": dict(sorted(self.writes.items())),
            "total_writes": sum(self.writes.values()),
            "statuses": dict(self.statuses),
            "failed": [
                {"op": r.op, "kind": r.kind, "anchor": r.anchor, "dn": r.dn, "result_code": r.result_code,
                 "message": r.message}
                for r in self.failures()
            ],
            "notes": [{"op": r.op, "kind": r.kind, "anchor": r.anchor, "dn": r.dn, "status": r.status,
                       "message": r.message} for r in self.notes()],
        } | ({"phases": self.phases} if self.phases else {})


class DomainWriter:
    """Applies changes over one connection made by `connect` (re-made after a transient failure)."""

    def __init__(
        self,
        connect: Callable[[], object],
        anchor_attribute: str,
        retry_budget_seconds: float = 120.0,
        set_passwords: bool = True,
        retry_attempts: int = 10,
        transient_codes: frozenset[int] = TRANSIENT_CODES,
        sink: CredentialSink | None = None,
        initial_password_days: float = 7.0,
    ):
        self._connect = connect
        self._conn = None
        self.anchor_attribute = anchor_attribute
        self.retry_budget_seconds = retry_budget_seconds
        self.retry_attempts = retry_attempts
        self.transient_codes = frozenset(transient_codes)
        self.set_passwords = set_passwords
        # Initial passwords go to the sink before the account is created (None: nobody learns them).
        self.sink = sink
        self.initial_password_days = initial_password_days
        self._policy: PasswordPolicy | None = None

    # -- connection handling ------------------------------------------------------------------
    @property
    def conn(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            disconnect(self._conn)  # a dead socket: closing it loses nothing
            self._conn = None

    def _call(self, what: str, fn: Callable[[object], bool]) -> dict:
        """Run one LDAP operation, retrying transient failures on a fresh connection."""
        from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPResponseTimeoutError

        backoff = Backoff(self.retry_budget_seconds, self.retry_attempts, cap_seconds=10.0)
        while True:
            try:
                conn = self.conn
                fn(conn)
                result = dict(conn.result or {})
                check_referrals(result, what)
                if result.get("result") not in self.transient_codes:
                    return result
                problem = f"LDAP code {result.get('result')} {result.get('description')}"
            except (LDAPCommunicationError, LDAPResponseTimeoutError) as exc:  # the connection, not the request
                problem = f"{type(exc).__name__}: {exc}"
            except LDAPException as exc:  # refused by the client library itself: a retry repeats it
                return {"result": None, "description": type(exc).__name__, "message": str(exc)[:300]}
            except (TransientError, OSError) as exc:  # the domain unreachable while reconnecting, a reset socket
                problem = str(exc)
            self.close()
            delay = backoff.next_delay()
            if delay is None:
                raise ApplyAborted(f"{what}: the domain stayed unavailable after {backoff.exhausted()} "
                                   f"(last error: {problem})")
            log.warning("%s: transient failure (%s); retrying in %.1fs", what, problem, delay)
            time.sleep(delay)

    # -- helpers -------------------------------------------------------------------------------
    def _anchor_at(self, dn: str) -> str | None:
        return self._read_anchor(dn)[0]

    def _read_anchor(self, dn: str) -> tuple[str | None, dict]:
        """The anchor of the object at `dn` (None: none there, or it carries none) and the read's result."""
        result = self._call(f"read {dn}", lambda c: c.search(dn, "(objectClass=*)", search_scope="BASE",
                                                            attributes=[self.anchor_attribute]))
        if result.get("result") != SUCCESS:
            return None, result
        for entry in self.conn.response or []:
            if entry.get("type") == "searchResEntry":
                raw = {k.lower(): v for k, v in entry.get("raw_attributes", {}).items()}
                values = raw.get(self.anchor_attribute.lower())
                return (decode_anchor(self.anchor_attribute, values[0]) if values else None), result
        return None, result

    def _not_ours_at_dn(self, change: Change) -> ApplyResult | None:
        """For a write addressed by DN (an object created in this plan): a failed result when the object at
        the DN does not carry the change's anchor, None when the write may go on. A delete finding nothing
        there is already in place."""
        anchor, read = self._read_anchor(change.dn)
        if anchor is not None and anchor.lower() == change.anchor.lower():
            return None
        if change.op == Op.DELETE and read.get("result") == NO_SUCH_OBJECT:
            return self._result(change, ALREADY, read)
        if read.get("result") not in (SUCCESS, NO_SUCH_OBJECT):
            return self._result(change, FAILED, read)
        there = ("no object is there" if read.get("result") == NO_SUCH_OBJECT
                 else f"the object there carries {anchor!r}" if anchor else "the object there carries none")
        return self._result(change, FAILED, read if read.get("result") == NO_SUCH_OBJECT else None, message=(
            f"not written: the object at {change.dn} does not carry {self.anchor_attribute} {change.anchor} "
            f"({there}); its create in this run failed, or another object took the DN"))

    def created_guids(self, changes: list[Change]) -> dict[int, str]:
        """{position in `changes`: objectGUID} of the changes addressed by DN (objects created in this plan)
        whose DN holds an object carrying the change's anchor, read in batches (one search per container and
        FILTER_BATCH names, on the RDN: cn is indexed, an anchor attribute need not be) instead of one read per
        change; the write then addresses that object by its GUID. A change not found so (no object there,
        another anchor, an unreadable entry) is left to the write's own read, which reports why. A batch that
        cannot be read leaves its changes to that read."""
        from ldap3.utils.conv import escape_filter_chars

        wanted: dict[str, list[int]] = {}  # normalized DN -> positions
        by_container: dict[str, tuple[str, set[str]]] = {}  # container key -> (container DN, RDN filter terms)
        for i, change in enumerate(changes):
            if change.guid or change.op not in ADDRESSED_BY_DN_CHECKED or not change.anchor:
                continue
            try:
                container, key = parent_dn(change.dn), normalize_dn(change.dn)
                term = f"({rdn_attribute(change.dn)}={escape_filter_chars(rdn_value(change.dn))})"
                container_key = normalize_dn(container)
            except DNError:
                continue
            wanted.setdefault(key, []).append(i)
            by_container.setdefault(container_key, (container, set()))[1].add(term)
        found: dict[int, str] = {}
        for container, terms in by_container.values():
            terms = sorted(terms)
            for start in range(0, len(terms), FILTER_BATCH):
                search = f"(|{''.join(terms[start:start + FILTER_BATCH])})"
                try:
                    entries = list(search_entries(self.conn, container, search, ["objectGUID", self.anchor_attribute],
                                                scope="LEVEL"))
                except (DomainReadError, OSError) as exc:
                    log.info("reading the created objects under %s in one search failed (%s): each is read "
                             "before its write", container, exc)
                    self.close()
                    continue
                for entry in entries:
                    raw = {k.lower(): v for k, v in entry.get("raw_attributes", {}).items()}
                    anchor = decode_anchor(self.anchor_attribute, raw.get(self.anchor_attribute.lower()))
                    guid = raw.get("objectguid")
                    try:
                        positions = wanted.get(normalize_dn(entry["dn"]), ())
                    except DNError:
                        continue
                    for i in positions:
                        if anchor is not None and guid and anchor.lower() == changes[i].anchor.lower():
                            found[i] = guid_from_bytes(guid[0])
        return found

    def _dn_of(self, guid: str) -> tuple[str | None, dict]:
        """The DN the object with this GUID has now (None when the read did not find it) and the read's
        result: only noSuchObject (32) says the object is gone."""
        result = self._call(f"read {guid}", lambda c: c.search(guid_dn(guid), "(objectClass=*)", search_scope="BASE",
                                                              attributes=["objectGUID"]))
        if result.get("result") != SUCCESS:
            return None, result
        return next((e["dn"] for e in self.conn.response or [] if e.get("type") == "searchResEntry"), None), result

    def _ldap_values(self, name: str, values: list[str]):
        if name.lower() == self.anchor_attribute.lower() and name.lower() in ANCHOR_BINARY_ATTRIBUTES:
            return [bytes.fromhex(v) for v in values]
        return values

    # -- operations ------------------------------------------------------------------------------
    def apply(self, change: Change) -> ApplyResult:
        handler = {
            Op.CREATE_CONTAINER: self._create_container,
            Op.CREATE: self._create,
            Op.RENAME: self._rename,
            Op.MODIFY: self._modify,
            Op.DISABLE: self._modify,
            Op.ADD_MEMBERS: self._members,
            Op.REMOVE_MEMBERS: self._members,
            Op.DELETE: self._delete,
        }[change.op]
        if not change.guid and change.op in ADDRESSED_BY_DN_CHECKED:
            refused = self._not_ours_at_dn(change)
            if refused is not None:
                return refused
        return handler(change)

    def _result(self, change: Change, status: str, result: dict | None = None, writes: int = 0,
                message: str = "") -> ApplyResult:
        code = (result or {}).get("result")
        if status == FAILED and not message:
            message = f"{(result or {}).get('description')}: {(result or {}).get('message', '')}".strip(": ")
        return ApplyResult(change.op, change.kind, change.anchor, change.new_dn or change.dn, status,
                           code, message, writes)

    def _create_container(self, change: Change) -> ApplyResult:
        attrs = dict(change.values)
        classes = attrs.pop("objectClass")
        r = self._call(f"create {change.dn}", lambda c: add_entry(c, change.dn, classes, attrs))
        if r.get("result") == SUCCESS:
            return self._result(change, APPLIED, r, 1)
        if r.get("result") == ENTRY_ALREADY_EXISTS:
            return self._result(change, ALREADY, r)
        return self._result(change, FAILED, r)

    def _create(self, change: Change) -> ApplyResult:
        attrs = {k: self._ldap_values(k, v) for k, v in change.values.items()}
        classes = attrs.pop("objectClass")
        what = f"create {change.kind} {change.anchor}"
        password = None
        if change.kind == "user" and self.set_passwords and change.reason == "initial password":
            password = self._initial_password(change)
            attrs["unicodePwd"] = [unicode_pwd(password)]

        def add(conn) -> bool:
            if password is not None:  # every connection, also one a retry makes: never a password in clear text
                require_encrypted(conn, what)
            return add_entry(conn, change.dn, classes, attrs)

        r = self._call(what, add)
        attrs.pop("unicodePwd", None)
        if r.get("result") == SUCCESS:
            return self._result(change, APPLIED, r, 1)
        if r.get("result") == ENTRY_ALREADY_EXISTS and self._anchor_at(change.dn) == change.anchor:
            if password is not None:
                return self._initial_password_in_place(change, password)
            return self._result(change, ALREADY, r)
        return self._result(change, FAILED, r)

    # -- initial passwords -----------------------------------------------------------------------
    def _initial_password(self, change: Change) -> str:
        """A password meeting the domain's policy, delivered to the sink before the account exists: a sink
        that is away stops the apply (retried) before anything is created, so no account is left with a
        password nobody can pick up."""
        from ldap3.core.exceptions import LDAPException

        def first(name: str) -> str | None:
            return (change.values.get(name) or [None])[0]

        if self._policy is None:
            try:
                self._policy = read_policy(self.conn)
            except (LDAPException, OSError, TransientError) as exc:
                raise ApplyAborted(f"create user {change.anchor}: the domain's password policy could not be read: "
                                   f"{type(exc).__name__}: {exc}") from None
        password = generate_password(self._policy, first("sAMAccountName"), first("displayName"))
        if self.sink is not None:
            created = now()
            item = InitialPassword(change.anchor, first("userPrincipalName"), first("sAMAccountName"), password,
                                   created, created + timedelta(days=self.initial_password_days))
            try:
                self.sink.deliver_initial(item)
            except TransientError as exc:
                raise ApplyAborted(f"create user {change.anchor}: the credential sink ({self.sink.name}) did not take "
                                   f"the initial password: {exc}") from None
        return password

    def _initial_password_in_place(self, change: Change, password: str) -> ApplyResult:
        """A create retried after the account was made (its answer lost, an Airflow retry of the task): the
        account holds an earlier attempt's password, while the sink now holds this one. Set this one while
        the account still waits for its first logon (pwdLastSet 0); once the person has changed it, leave it."""
        from ldap3 import MODIFY_REPLACE

        r = self._call(f"read {change.dn}", lambda c: c.search(change.dn, "(objectClass=*)", search_scope="BASE",
                                                              attributes=["pwdLastSet"]))
        entry = next((e for e in self.conn.response or [] if e.get("type") == "searchResEntry"), None)
        if r.get("result") != SUCCESS or entry is None:
            return self._result(change, FAILED, r)
        if ldap_values({k.lower(): v for k, v in entry["attributes"].items()}.get("pwdlastset")) != ["0"]:
            return self._result(change, ALREADY, message="the account's password was changed since it was created; "
                                                         "the initial password just delivered does not apply")
        what = f"set the initial password of user {change.anchor}"
        mods = {"unicodePwd": [(MODIFY_REPLACE, [unicode_pwd(password)])], "pwdLastSet": [(MODIFY_REPLACE, ["0"])]}

        def modify(conn) -> bool:
            require_encrypted(conn, what)
            return modify_entry(conn, change.dn, mods)

        r = self._call(what, modify)
        if r.get("result") == SUCCESS:
            return self._result(change, ALREADY, r, 1)
        return self._result(change, FAILED, r)

    def _rename(self, change: Change) -> ApplyResult:
        if change.guid:  # a retry finds the object where this rename (or the swap it starts) puts it
            now, read = self._dn_of(change.guid)
            if now is None and read.get("result") == NO_SUCH_OBJECT:
                return self._result(change, FAILED, read,
                                    message=f"the object with objectGUID {change.guid} no longer exists")
            if now is None:
                return self._result(change, FAILED, read,
                                    message=f"the object with objectGUID {change.guid} could not be read: LDAP code "
                                            f"{read.get('result')} {read.get('description')}")
            if self._at(now, change.new_dn) or (change.final_dn and self._at(now, change.final_dn)):
                return self._result(change, ALREADY)
        # AD resolves <GUID=...> for the entry, not for the new DN's parent: the parent is always given.
        r = self._call(f"rename {change.kind} {change.anchor}",
                       lambda c: c.modify_dn(target(change), first_rdn(change.new_dn), delete_old_dn=True,
                                             new_superior=parent_dn(change.new_dn)))
        if r.get("result") == SUCCESS:
            return self._result(change, APPLIED, r, 1)
        if change.guid:
            now, _ = self._dn_of(change.guid)
            if now is not None and self._at(now, change.new_dn):
                return self._result(change, ALREADY, r)
        elif r.get("result") == NO_SUCH_OBJECT and self._anchor_at(change.new_dn) == change.anchor:
            return self._result(change, ALREADY, r)
        return self._result(change, FAILED, r)

    @staticmethod
    def _at(current: str, wanted: str) -> bool:
        """The object sits at `wanted`, spelt the same (a case-only rename is not done until the case is)."""
        return same_dn(current, wanted) and rdn_value(current) == rdn_value(wanted)

    def _modify(self, change: Change) -> ApplyResult:
        from ldap3 import MODIFY_REPLACE

        mods = {k: [(MODIFY_REPLACE, self._ldap_values(k, v))] for k, v in change.values.items()}
        r = self._call(f"modify {change.kind} {change.anchor}", lambda c: modify_entry(c, target(change), mods))
        if r.get("result") == SUCCESS:
            return self._result(change, APPLIED, r, 1)
        return self._result(change, FAILED, r)

    def _members(self, change: Change) -> ApplyResult:
        from ldap3 import MODIFY_ADD, MODIFY_DELETE

        adding = change.op == Op.ADD_MEMBERS
        verb = MODIFY_ADD if adding else MODIFY_DELETE
        benign = ATTRIBUTE_OR_VALUE_EXISTS if adding else NO_SUCH_ATTRIBUTE
        what = f"{'add' if adding else 'remove'} members of group {change.anchor}"
        r = self._call(what, lambda c: modify_entry(c, target(change), {"member": [(verb, change.members)]}))
        if r.get("result") == SUCCESS:
            return self._result(change, APPLIED, r, 1)
        if r.get("result") not in (benign, ENTRY_ALREADY_EXISTS, NO_SUCH_OBJECT, 53) or len(change.members) == 0:
            return self._result(change, FAILED, r)
        # Part of the batch is already in place (a rerun): one value at a time.
        writes, failed = 0, None
        for member in change.members:
            r1 = self._call(what, lambda c, m=member: modify_entry(c, target(change), {"member": [(verb, [m])]}))
            code = r1.get("result")
            if code == SUCCESS:
                writes += 1
            elif code in (benign, ENTRY_ALREADY_EXISTS) or (not adding and code == 53):
                continue
            else:
                failed = r1
        if failed is not None:
            return self._result(change, FAILED, failed, writes)
        return self._result(change, APPLIED if writes else ALREADY, r, writes)

    def _delete(self, change: Change) -> ApplyResult:
        # Tree delete: a synced user or group may hold child objects (AD puts devices and policies there).
        r = self._call(f"delete {change.kind} {change.anchor}",
                       lambda c: c.delete(target(change), controls=[TREE_DELETE_CONTROL]))
        if r.get("result") == SUCCESS:
            return self._result(change, APPLIED, r, 1)
        if r.get("result") == NO_SUCH_OBJECT:
            return self._result(change, ALREADY, r)
        return self._result(change, FAILED, r)
