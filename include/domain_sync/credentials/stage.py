"""The credentials task: password changes from the credential source reach the domain, after apply (the
users exist) and before commit.

Per user, events go in the order of their time, each at most once:
- an event already applied (in the ledger: its mark in the source was lost, or it was dropped in again)
  is a replay: nothing is written, it is marked again;
- an event not newer than the last applied one of that user is stale: ignored, marked and reported;
- otherwise the password is set (unicodePwd replaced, over LDAPS or StartTLS only; the domain sets
  pwdLastSet to now, so the person is not asked to change the password they chose), recorded in the
  ledger, then marked applied in the source;
- a password the domain refuses (its policy: too short, in the history; LDAP 19 or 53) is marked
  refused and reported, never retried; the user's later events go on;
- any other failure leaves the event (and that user's later ones) pending: retried by the task's
  retry when the domain was busy or away (the task then fails with a transient error), else at the
  next run; it is never lost;
- an event for a user the domain does not hold yet waits (pending) for a later run;
- an event for a tenant object id that is the anchor of several synced objects (the plan holds them all)
  is not applied to any of them: reported (`duplicate_anchor`, naming the DNs) and left pending.
Entries of the source that are no events (an envelope that does not decrypt or verify) are set aside
by the source and reported. Results (no passwords) go to credentials/results.json in the run folder.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from domain_sync.alerts import raise_alert
from domain_sync.context import StageContext
from domain_sync.credentials.ledger import Ledger
from domain_sync.dn import guid_dn, guid_from_bytes
from domain_sync.domain import (
    anchor_filter_value,
    check_referrals,
    connect,
    decode_anchor,
    disconnect,
    is_owned,
    object_kind,
    search_entries,
)
from domain_sync.errors import TransientError
from domain_sync.ldap_requests import modify_entry
from domain_sync.passwords.policy import require_encrypted, unicode_pwd
from domain_sync.passwords.stores import (
    APPLIED,
    REFUSED,
    REPLAYED,
    STALE,
    CredentialSource,
    PasswordChange,
    open_source,
)
from domain_sync.records import USER
from domain_sync.runs import write_json_atomic
from domain_sync.state import StateStore, check_state

log = logging.getLogger(__name__)

REFUSING_CODES = frozenset({19, 53})  # constraintViolation (policy), unwillingToPerform
FAILED = "failed"
WAITING = "waiting"  # no such synced user in the domain (yet)
DUPLICATE_ANCHOR = "duplicate_anchor"  # the anchor is on several synced objects: held, like the plan holds them
COUNTS = ("set", "skipped_stale", "replayed", "refused", "failed", "waiting", DUPLICATE_ANCHOR, "set_aside")
_COUNT_OF = {APPLIED: "set", STALE: "skipped_stale", REPLAYED: "replayed", REFUSED: "refused", FAILED: "failed",
             WAITING: "waiting", DUPLICATE_ANCHOR: DUPLICATE_ANCHOR}
LOOKUP_BATCH = 50


class CredentialEventsFailed(TransientError):
    """The domain was busy or away while setting passwords; the events stay pending for the task's retry."""


def _search_base(settings, base_dn: str) -> str:
    relative = settings.search_base or settings.container
    return f"{relative},{base_dn}" if relative else base_dn


@dataclass
class SyncedUsers:
    """The domain's synced users for a set of tenant object ids."""

    guids: dict[str, str] = field(default_factory=dict)  # tenant object id -> objectGUID of its one holder
    # Tenant object ids held by more than one synced object -> their DNs: the plan holds all of them,
    # and so does this stage (which one would get the password would depend on the DC's answer order).
    duplicates: dict[str, list[str]] = field(default_factory=dict)


def find_users(conn, settings, base_dn: str, owner_marker: str, object_ids: Iterable[str]) -> SyncedUsers:
    """The synced objects holding these anchors under the search base, by the plan's rule: a user or
    group with the anchor and this sync's ownership marker (domain.is_owned, domain.object_kind). An
    anchor on two such objects is a duplicate, whatever order the domain returns them in. Reads fail
    closed (domain.search_entries)."""
    holders: dict[str, list[tuple[str, str | None, str | None]]] = defaultdict(list)  # oid -> (dn, kind, guid)
    ids = sorted(set(object_ids))
    anchor = settings.anchor_attribute
    from ldap3.utils.conv import escape_filter_chars

    marker = f"({settings.owner_attribute}={escape_filter_chars(owner_marker)})" if settings.owner_attribute else ""
    attributes = sorted({anchor, "objectGUID", "objectClass", *([settings.owner_attribute] if marker else [])})
    for i in range(0, len(ids), LOOKUP_BATCH):
        wanted = "".join(f"({anchor}={anchor_filter_value(anchor, oid)})" for oid in ids[i:i + LOOKUP_BATCH])
        search_filter = f"(&(|(objectClass=user)(objectClass=group)){marker}(|{wanted}))"
        for entry in search_entries(conn, _search_base(settings, base_dn), search_filter, attributes):
            kind = object_kind(entry["attributes"])
            if kind is None or not is_owned(entry["attributes"], settings.owner_attribute, owner_marker):
                continue
            raw = {k.lower(): v for k, v in entry.get("raw_attributes", {}).items()}
            oid = decode_anchor(anchor, (raw.get(anchor.lower()) or [None])[0])
            guid = (raw.get("objectguid") or [None])[0]
            if oid in ids:
                holders[oid].append((entry["dn"], kind, guid_from_bytes(guid) if guid else None))
    users = SyncedUsers()
    for oid, held in holders.items():
        if len(held) > 1:
            users.duplicates[oid] = sorted(dn for dn, _, _ in held)
            log.warning("anchor %s is on %d synced objects (%s): no password is set on any of them", oid,
                        len(held), "; ".join(users.duplicates[oid]))
        elif held[0][1] == USER and held[0][2]:
            users.guids[oid] = held[0][2]
    return users


def _set_password(conn, guid: str, event: PasswordChange) -> dict:
    from ldap3 import MODIFY_REPLACE
    from ldap3.core.exceptions import LDAPCommunicationError, LDAPResponseTimeoutError

    what = f"set the password of user {event.object_id}"
    require_encrypted(conn, what)
    try:
        modify_entry(conn, guid_dn(guid), {"unicodePwd": [(MODIFY_REPLACE, [unicode_pwd(event.password)])]})
    except (LDAPCommunicationError, LDAPResponseTimeoutError, OSError) as exc:
        return {"result": None, "description": type(exc).__name__, "transient": True}
    result = dict(conn.result or {})
    check_referrals(result, what)
    return result


def apply_events(ctx: StageContext, source: CredentialSource, ledger: Ledger, conn, users: SyncedUsers,
                 events: list[PasswordChange]) -> tuple[list[dict], bool]:
    """Each user's events in order; the outcomes (no passwords) and whether a failure was transient."""
    transient = ctx.settings.transient_ldap_codes()
    outcomes: list[dict] = []
    retry = False
    by_user: dict[str, list[PasswordChange]] = defaultdict(list)
    for event in events:
        by_user[event.object_id].append(event)
    for object_id in sorted(by_user):
        blocked = False
        for event in sorted(by_user[object_id], key=lambda e: (e.changed_at, e.event_id)):
            reason = ""
            last = ledger.last_applied_at(object_id)
            if blocked:
                outcome, reason = FAILED, "an earlier event of this user failed; it waits behind it"
            elif ledger.applied(event):
                outcome, reason = REPLAYED, "already applied: nothing written"
            elif last is not None and event.changed_at <= last:
                outcome, reason = STALE, f"older than the last applied change ({last.isoformat()}): ignored"
            elif object_id in users.duplicates:
                outcome = DUPLICATE_ANCHOR
                reason = (f"anchor {object_id} is on {len(users.duplicates[object_id])} synced objects "
                          f"({'; '.join(users.duplicates[object_id])}): held, no password set on any, pending "
                          f"until one is removed")
            elif object_id not in users.guids:
                outcome, reason = WAITING, "no synced user with this tenant object id in the domain (yet): pending"
            else:
                result = _set_password(conn, users.guids[object_id], event)
                code = result.get("result")
                if code == 0:
                    ledger.record(event)  # before the mark: a lost mark makes a replay, never a second write
                    outcome = APPLIED
                elif code in REFUSING_CODES:
                    outcome = REFUSED
                    reason = f"the domain refused the password: LDAP {code} {result.get('description')}"
                else:
                    outcome, blocked = FAILED, True
                    reason = f"LDAP {code} {result.get('description')}: left pending, retried"
                    retry = retry or result.get("transient") or code in transient
            if outcome in (APPLIED, STALE, REPLAYED, REFUSED):
                source.mark(event, outcome)
            outcomes.append({"object_id": object_id, "event_id": event.event_id, "origin": event.origin,
                             "changed_at": event.changed_at.isoformat(), "outcome": outcome, "reason": reason})
            log.info("password change %s for user %s: %s%s", event.event_id, object_id, outcome,
                     f" ({reason})" if reason else "")
    return outcomes, bool(retry)


def run(ctx: StageContext) -> dict:
    settings, run = ctx.settings, ctx.run
    counts = dict.fromkeys(COUNTS, 0)
    results_file = run.credential_results
    if ctx.flag("dry_run"):
        summary = {"dry_run": True, "source": settings.credential_source, "password_changes": counts}
        write_json_atomic(results_file, summary)
        return summary
    source = open_source(settings)
    if source is None:
        summary = {"source": "none", "password_changes": counts}
        write_json_atomic(results_file, summary)
        return summary
    check_state(StateStore(settings.state_dir), run)  # no other run at work, the state extract read
    events, set_aside = source.pending()
    ledger = Ledger.in_state(settings.state_dir)
    outcomes: list[dict] = []
    retry = False
    if events:
        endpoint = ctx.endpoint
        conn = connect(endpoint, settings.ldap_timeout_seconds, run_id=run.run_id)
        try:
            require_encrypted(conn, "password changes")
            users = find_users(conn, settings, endpoint.base_dn, ctx.owner_marker, (e.object_id for e in events))
            outcomes, retry = apply_events(ctx, source, ledger, conn, users, events)
        finally:
            disconnect(conn)
    for item in outcomes:
        counts[_COUNT_OF[item["outcome"]]] += 1
    counts["set_aside"] = len(set_aside)
    # The counts sit under their own key: a stage summary's top-level "failed" means the stage failed.
    summary = {"source": source.name, "password_changes": counts, "results_file": str(results_file)}
    write_json_atomic(results_file, {**summary, "events": outcomes,
                                     "set_aside": [{"origin": s.origin, "reason": s.reason} for s in set_aside]})
    log.info("credentials: %s", {k: v for k, v in counts.items()})
    for s in set_aside:
        log.warning("set aside %s: %s", s.origin, s.reason)
    attention = {k: counts[k] for k in ("skipped_stale", "refused", "failed", DUPLICATE_ANCHOR, "set_aside")
                 if counts[k]}
    if attention:
        raise_alert(settings, "credential_events", f"run {run.run_id}: password changes that need a look: "
                    f"{attention}; see {results_file}", run_id=run.run_id, **attention)
    if retry:
        raise CredentialEventsFailed(f"run {run.run_id}: {counts['failed']} password changes failed while the domain "
                                     f"was busy or away; they stay pending and the task's retry takes them again")
    return summary
