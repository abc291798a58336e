"""Reaching the domain: its LDAP endpoint (from the Airflow connection), LDAPS connections, the anchor.

TLS: LDAPS (or StartTLS) with certificate validation against the connection's CA file; a
self-signed DC certificate without an IP SAN (Samba's) is validated for `tls_server_name`.

Referrals: never followed. ldap3 would follow one to any host, binding there with the service
account's credentials (in clear text for an ldap:// referral); `connect` switches that off, and
`check_referrals` turns a referral the domain answers into a `DomainReferral` (a configuration error).

Reads fail closed (`search_entries`, `read_entry`, `entry_exists`, `check_result`): a read that does not end
in success raises DomainReadError (DomainBusy for busy, unavailable or a broken connection, retried;
DomainReadFailed otherwise), and only noSuchObject (32) means "missing". Every read of the domain goes
through them, so nothing is planned or written from a partial read.
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain_sync.alerts import raise_alert, raise_alert_once
from domain_sync.config import Settings, SettingsError
from domain_sync.dn import DNError, parse_dn
from domain_sync.errors import PermanentError, SyncError, TransientError
from domain_sync.ldap_answers import install as install_entry_decoder

log = logging.getLogger(__name__)

ANCHOR_BINARY_ATTRIBUTES = {"ms-ds-consistencyguid"}
RESULT_REFERRAL = 10  # LDAP result code "referral" (RFC 4511)
SUCCESS = 0
NO_SUCH_OBJECT = 32
BUSY_CODES = frozenset({51, 52})  # busy, unavailable: the reads a later try may complete
PAGE_SIZE = 500
RECEIVE_SIZE = 1 << 16  # bytes asked of the socket at a time


class DomainConnectionError(PermanentError):
    """The domain refused the connection's settings (bind, StartTLS); retrying cannot help."""


class DomainReferral(DomainConnectionError):
    """The domain answered with a referral to another server; the sync never follows one (it would bind
    there with the service account's credentials). A setting is wrong: the connection's host, its
    base_dn or DOMAIN_SYNC_SEARCH_BASE points at a naming context this DC does not hold."""


class DomainUnreachable(TransientError):
    """The domain did not answer (down, network, TLS handshake); Airflow's retry may help."""


class DomainReadError(SyncError):
    """A read of the domain did not complete; nothing read by it is used, so no partial read of the
    domain is ever planned against. Raised as one of the two below (the retry rule tells them apart)."""


class DomainBusy(DomainReadError, TransientError):
    """The domain was busy (51) or unavailable (52), or the connection broke during the read; Airflow's
    retry may succeed."""


class DomainReadFailed(DomainReadError, PermanentError):
    """The domain refused the read for good (a time or size limit, access rights, a bad base or filter);
    the same read fails again, so it is not retried."""


@dataclass(frozen=True)
class DomainEndpoint:
    host: str
    port: int
    bind_dn: str
    password: str
    base_dn: str
    ca_file: str | None = None
    tls_server_name: str | None = None
    start_tls: bool = False
    validate_tls: bool = True
    conn_id: str = "domain"

    def __repr__(self) -> str:  # never show the password
        return f"DomainEndpoint({self.conn_id}: {self.host}:{self.port}, bind {self.bind_dn!r})"

    @property
    def address(self) -> str:
        return f"ldaps://{self.host}:{self.port}" if not self.start_tls else f"ldap://{self.host}:{self.port}"


# The domain connection's extras: name -> (type, default). README.md ("The domain connection's
# extras") documents each; any other key is refused, so that a misspelt one is not silently ignored.
CONNECTION_EXTRAS: dict[str, tuple[type, Any]] = {
    "base_dn": (str, None),
    "ca_file": (str, None),
    "tls_server_name": (str, None),
    "start_tls": (bool, False),
    "validate_tls": (bool, True),
    "realm": (str, None),
}


def endpoint_from_connection(conn: Any, conn_id: str) -> DomainEndpoint:
    """Build the endpoint from an Airflow connection: host, port, login (bind DN), password, and the
    extras of CONNECTION_EXTRAS (base_dn required). Raises SettingsError for an unknown extra, a
    boolean extra that is not true/false, or a wildcard tls_server_name."""
    raw = conn.extra_dejson if hasattr(conn, "extra_dejson") else dict(conn.extra or {})
    extra = _connection_extras(raw, conn_id)
    missing = [name for name, value in (("host", conn.host), ("login", conn.login),
                                        ("password", conn.password), ("extra.base_dn", extra["base_dn"]))
               if not value]
    if missing:
        raise DomainConnectionError(f"connection '{conn_id}' lacks {', '.join(missing)}")
    start_tls = extra["start_tls"]
    return DomainEndpoint(
        host=conn.host,
        port=int(conn.port or (389 if start_tls else 636)),
        bind_dn=conn.login,
        password=conn.password,
        base_dn=extra["base_dn"],
        ca_file=extra["ca_file"],
        tls_server_name=extra["tls_server_name"],
        start_tls=start_tls,
        validate_tls=extra["validate_tls"],
        conn_id=conn_id,
    )


def _connection_extras(raw: Any, conn_id: str) -> dict[str, Any]:
    """The extras checked against CONNECTION_EXTRAS, defaults filled in (JSON null counts as absent)."""
    if not isinstance(raw, Mapping):
        raise SettingsError(f"connection '{conn_id}': extra must be a JSON object")
    unknown = sorted(str(key) for key in raw if key not in CONNECTION_EXTRAS)
    if unknown:  # names only: a value put in the wrong place may be a secret
        raise SettingsError(f"connection '{conn_id}': unknown extra {', '.join(unknown)}; "
                            f"known: {', '.join(CONNECTION_EXTRAS)}")
    extra = {}
    for key, (kind, default) in CONNECTION_EXTRAS.items():
        value = raw.get(key)
        if value is None:
            extra[key] = default
        elif kind is bool:
            extra[key] = _flag(value, conn_id, key)
        elif isinstance(value, str):
            extra[key] = value
        else:
            raise SettingsError(f"connection '{conn_id}': extra.{key} must be a string, not {type(value).__name__}")
    if extra["tls_server_name"] is not None and "*" in extra["tls_server_name"]:
        raise SettingsError(f"connection '{conn_id}': extra.tls_server_name {extra['tls_server_name']!r} is a "
                            f"wildcard; name the DC's certificate exactly")
    return extra


def _flag(value: Any, conn_id: str, key: str) -> bool:
    """A boolean extra: JSON true/false, or the text "true"/"false" in any case; nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SettingsError(f"connection '{conn_id}': extra.{key} must be true or false, not {value!r}")


def endpoint_from_airflow(conn_id: str) -> DomainEndpoint:
    from airflow.sdk import BaseHook

    return endpoint_from_connection(BaseHook.get_connection(conn_id), conn_id)


def connect(endpoint: DomainEndpoint, timeout: float = 30.0, collect_usage: bool = False, run_id: str | None = None):
    """A bound ldap3 connection over TLS that never follows a referral (check answers with
    `check_referrals`); raises DomainConnectionError naming the endpoint. `run_id`: the run the
    connection works for (a stage's), by which the alert for certificate validation off is counted."""
    import ldap3
    from ldap3.core.exceptions import LDAPException

    install_entry_decoder()
    if not endpoint.validate_tls:
        _warn_tls_validation_off(endpoint, run_id)
    tls = ldap3.Tls(
        validate=ssl.CERT_REQUIRED if endpoint.validate_tls else ssl.CERT_NONE,
        ca_certs_file=endpoint.ca_file,
        valid_names=[endpoint.tls_server_name] if endpoint.tls_server_name else None,
        version=ssl.PROTOCOL_TLS_CLIENT,
    )
    server = ldap3.Server(
        endpoint.host,
        port=endpoint.port,
        use_ssl=not endpoint.start_tls,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=int(timeout),
        allowed_referral_hosts=[],
    )
    try:
        conn = ldap3.Connection(
            server,
            user=endpoint.bind_dn,
            password=endpoint.password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            receive_timeout=int(timeout),
            raise_exceptions=False,
            collect_usage=collect_usage,
            auto_range=True,
            return_empty_attributes=False,
            auto_referrals=False,
            # DNs are built and read by domain_sync.dn; ldap3's own DN check rejects escapes that
            # AD-compatible servers send back (Samba's "\?") and would refuse to address those objects.
            check_names=False,
        )
        conn.open()
        # StartTLS failures raise (LDAPStartTLSError); never bind in clear text when it did not start.
        if endpoint.start_tls and not (conn.start_tls() and conn.tls_started):
            raise DomainConnectionError(
                f"domain connection '{endpoint.conn_id}' ({endpoint.address}): StartTLS did not start")
        if not conn.bind():
            result = conn.result or {}
            raise DomainConnectionError(
                f"domain connection '{endpoint.conn_id}' ({endpoint.address}): bind as "
                f"{endpoint.bind_dn!r} refused: {result.get('description')} (LDAP code {result.get('result')})"
            )
    except LDAPException as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate" in str(exc).lower():
            raise DomainConnectionError(
                f"domain connection '{endpoint.conn_id}' ({endpoint.address}): the server's certificate does not "
                f"validate against extra.ca_file for the name in extra.tls_server_name: {exc}"
            ) from None
        raise DomainUnreachable(
            f"domain connection '{endpoint.conn_id}' ({endpoint.address}) failed: {type(exc).__name__}: {exc}"
        ) from None
    return conn


def disconnect(conn) -> None:
    """Unbind, for the `finally` of every connection's user. A connection the DC dropped raises on unbind
    (ldap3's socket errors, which are not all OSErrors); closing it loses nothing, and raising there would
    replace the error or the result of the work done on it."""
    from ldap3.core.exceptions import LDAPException

    try:
        conn.unbind()
    except (LDAPException, OSError) as exc:
        log.info("domain connection closed by the server before unbind (%s: %s)", type(exc).__name__, exc)


def _warn_tls_validation_off(endpoint: DomainEndpoint, run_id: str | None) -> None:
    """Certificate validation is off: a warning on every connect, and a `tls_validation_off` alert once per
    run (every run raises it again; the run's several tasks and connections raise one, through the run's
    alert ledger). A connection made outside a run alerts on each connect: there is no run to count by."""
    message = (f"domain connection '{endpoint.conn_id}' ({endpoint.address}) has extra.validate_tls false: the DC's "
               f"certificate is not checked, so whoever answers in its place receives the bind password")
    log.warning("%s", message)
    settings = Settings.from_env()
    details = {"conn_id": endpoint.conn_id, "address": endpoint.address}
    if run_id is None:
        raise_alert(settings, "tls_validation_off", message, **details)
    else:
        raise_alert_once(settings, run_id, f"tls_validation_off:{endpoint.conn_id}", "tls_validation_off", message,
                         **details)


def check_referrals(outcome: Any, dn: str) -> None:
    """Raise DomainReferral when `outcome` carries a referral for the operation on `dn`; never follow it.

    `outcome` is an ldap3 Connection after an operation (its `result` and `response` are checked), an
    operation's result (`conn.result`), a search response (a list of entries) or one entry of it (as a
    paged-search generator yields them). A result with code 10 (referral) and a searchResRef entry
    (continuation reference) raise, naming `dn` and the referral URLs. Let through: continuation
    references to the forest's Configuration, Schema and DNS application partitions, which AD and Samba
    return on every subtree search from the domain root and which hold no users or groups.
    """
    if hasattr(outcome, "result") and hasattr(outcome, "response"):  # a Connection
        items = [outcome.result, *(outcome.response or [])]
    elif isinstance(outcome, Mapping):
        items = [outcome]
    else:
        items = list(outcome or [])
    urls: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "searchResRef":
            urls += [url for url in ldap_values(item.get("uri")) if not _names_forest_partition(url)]
        elif item.get("result") == RESULT_REFERRAL:
            urls += ldap_values(item.get("referrals")) or ["(no URL given)"]
    if urls:
        raise DomainReferral(
            f"the domain answered the operation on {dn!r} with a referral to {', '.join(urls)}: referrals are not "
            f"followed (that would bind to another host with the service account's credentials); point the "
            f"connection at a DC that holds {dn!r}, or correct extra.base_dn or DOMAIN_SYNC_SEARCH_BASE")


def check_result(outcome: Any, what: str) -> None:
    """Raise unless the operation succeeded: a referral as DomainReferral, any other code as a
    DomainReadError naming `what`, the code and the domain's message. `outcome` is a Connection after the
    operation or its result."""
    result = (outcome if outcome is None or isinstance(outcome, Mapping) else outcome.result) or {}
    check_referrals(result, what)
    code = result.get("result")
    if code != SUCCESS:
        kind = DomainBusy if code in BUSY_CODES else DomainReadFailed
        message = f": {result['message']}" if result.get("message") else ""
        raise kind(f"{what} ended with LDAP code {code} {result.get('description')}{message}; nothing read by it "
                   f"is used")


SHOW_DELETED = ("1.2.840.113556.1.4.417", True, None)  # LDAP_SERVER_SHOW_DELETED_OID: tombstones too


# Result codes with which a DC refuses a whole answer to a search without paging (Windows AD past MaxPageSize,
# MaxQueryDuration or MaxResultSetSize): the search is read in pages instead.
UNPAGED_REFUSED = frozenset({3, 4, 11})  # timeLimitExceeded, sizeLimitExceeded, adminLimitExceeded
_PAGES_ONLY = "domain_sync_pages_only"  # set on a connection whose DC refused an unpaged answer
# The DCs (host, port) that refused an unpaged answer in this process: a new connection to one reads in pages
# from its first search instead of asking once more (MaxPageSize is the DC's policy, not the connection's).
_PAGES_ONLY_DCS: set[tuple[str, int]] = set()


def _dc_key(conn) -> tuple[str, int] | None:
    server = getattr(conn, "server", None)
    host, port = getattr(server, "host", None), getattr(server, "port", None)
    return (host.lower(), int(port)) if isinstance(host, str) and isinstance(port, int) else None


def _pages_only(conn) -> bool:
    return bool(getattr(conn, _PAGES_ONLY, False)) or _dc_key(conn) in _PAGES_ONLY_DCS


def search_entries(conn, base: str, search_filter: str, attributes: list[str], scope: str = "SUBTREE",
                 controls: list | None = None):
    """Every entry of a search (a generator): first as one answer read as it arrives (a DC that sends it whole,
    like Samba, serves it several times faster than in pages, which it rebuilds object by object), then, on a DC
    that refuses that (Windows AD past MaxPageSize), in pages of PAGE_SIZE, leaving out the objects already
    given; every connection to that DC (in this process) then reads in pages from the start. Fails closed: a
    search that ends on anything but success (busy, unavailable, a time or size limit, a failed page) raises
    DomainReadError once the entries read so far are out, so a caller collecting them never works on a partial
    read."""
    from ldap3.core.exceptions import LDAPException

    what = f"reading {base} ({search_filter[:200]})"
    given: set[str] = set()
    auto_range = getattr(conn, "auto_range", False)
    conn.auto_range = False  # value ranges are read here, failing closed (ldap3's own reads keep what they got)
    try:
        if not _pages_only(conn):
            for entry in _whole_answer(conn, base, search_filter, attributes, scope, controls, what):
                check_referrals(entry, base)
                if entry.get("type") == "searchResEntry":
                    given.add(entry["dn"])
                    yield entry
            if (conn.result or {}).get("result") not in UNPAGED_REFUSED:
                check_result(conn, what)
                return
            setattr(conn, _PAGES_ONLY, True)
            if (key := _dc_key(conn)) is not None:
                _PAGES_ONLY_DCS.add(key)
        for entry in conn.extend.standard.paged_search(
                base, search_filter, search_scope=scope, attributes=attributes, paged_size=PAGE_SIZE, generator=True,
                controls=controls):
            check_referrals(entry, base)
            if entry.get("type") == "searchResEntry" and entry["dn"] not in given:
                if _has_ranges(entry):
                    page_result = conn.result
                    _complete_ranges(conn, entry, what, controls)
                    conn.result = page_result
                yield entry
    except (LDAPException, OSError) as exc:
        raise _read_failure(what, exc) from None
    finally:
        conn.auto_range = auto_range
    check_result(conn, what)


def _has_ranges(entry: dict) -> bool:
    return any(";range=" in name for name in entry["raw_attributes"])


def _complete_ranges(conn, entry: dict, what: str, controls: list | None = None) -> None:
    """Read the rest of each attribute the DC sent in a value range (Windows AD: `member;range=0-1499` of a big
    group), range after range, into the attribute itself (the last range may hold no value). Fails closed: a
    range read that does not succeed raises, and an object whose values changed under the reads (no range, or
    another one, where one was due) is DomainBusy."""
    for name in [n for n in entry["raw_attributes"] if ";range=" in n]:
        attribute, _, bounds = name.partition(";range=")
        raw = list(entry["raw_attributes"].pop(name) or [])
        text = list(entry["attributes"].pop(name) or [])
        while not bounds.endswith("-*"):
            reading = f"{what}: the values of {attribute} of {entry['dn']} after range {bounds}"
            try:
                low = int(bounds.partition("-")[2]) + 1
            except ValueError:
                raise DomainReadFailed(f"{reading}: the DC sent a range that is not one") from None
            conn.search(entry["dn"], "(objectClass=*)", search_scope="BASE", attributes=[f"{attribute};range={low}-*"],
                        controls=controls)
            check_result(conn, reading)
            found = next((e for e in conn.response or [] if e.get("type") == "searchResEntry"), {})
            ranged = [n for n in found.get("raw_attributes", {}) if n.lower().startswith(attribute.lower() + ";range=")]
            bounds = ranged[0].partition(";range=")[2] if ranged else ""
            if not bounds.startswith(f"{low}-"):
                raise DomainBusy(f"{reading}: the values from {low} on did not come (the object changed while it was "
                                 f"read); a later try reads it again")
            raw += found["raw_attributes"][ranged[0]] or []
            text += found["attributes"][ranged[0]] or []
        entry["raw_attributes"][attribute] = list(entry["raw_attributes"].get(attribute) or []) + raw
        entry["attributes"][attribute] = list(entry["attributes"].get(attribute) or []) + text


def _whole_answer(conn, base: str, search_filter: str, attributes: list[str], scope: str, controls: list | None,
                  what: str):
    """The answers of one search without paging, each as ldap3 decodes it, as they arrive (ldap3's own search
    keeps a whole answer in memory before it returns: 100,000 users); conn.result is its result at the end.
    An entry sent with a value range (Windows AD: `member;range=0-1499` of a big group) comes after the others,
    completed (`_complete_ranges`). Stopped early, the rest of the answer is read and dropped, so the
    connection stays usable."""
    from ldap3 import DEREF_ALWAYS, NO_ATTRIBUTES
    from ldap3.core.exceptions import LDAPSocketReceiveError
    from ldap3.operation.search import search_operation
    from ldap3.strategy import sync

    strategy = conn.strategy
    with conn.connection_lock:
        conn.response = None  # the entries are yielded, not kept (a range read after them leaves its own)
        request = search_operation(base, search_filter, scope, DEREF_ALWAYS, attributes or [NO_ATTRIBUTES], 0, 0,
                                   False, conn.auto_escape, conn.auto_encode, None,
                                   validator=conn.server.custom_validator, check_names=conn.check_names)
        message_id = conn.send("searchRequest", request, controls)
        ranged: list[dict] = []
        messages = _messages(conn, base)  # endless: it ends here at the searchResDone, or raises
        try:
            for message in messages:
                decoded = sync.decode_message_fast(message)
                answer = strategy.decode_response_fast(decoded)
                if int(decoded["messageID"]) != message_id:  # a notice of disconnection (0), or a stray answer
                    strategy.close()
                    raise LDAPSocketReceiveError(f"an answer to message {decoded['messageID']} came while "
                                                 f"reading the answer to {message_id}")
                if answer["type"] == "searchResDone":
                    result = answer
                    break
                if answer["type"] == "searchResEntry" and _has_ranges(answer):
                    ranged.append(answer)
                    continue
                yield answer
        except GeneratorExit:
            for message in messages:  # stopped early: the rest of this answer is read, never mistaken for another's
                if strategy.decode_response_fast(sync.decode_message_fast(message))["type"] == "searchResDone":
                    break
            raise
        finally:
            if strategy._outstanding:  # None once ldap3 closed a broken connection
                strategy._outstanding.pop(message_id, None)
        if result.get("result") == SUCCESS:
            for entry in ranged:
                _complete_ranges(conn, entry, what, controls)
                yield entry
        conn.result = result


def _messages(conn, base: str):
    """The LDAP messages arriving on the connection, each whole (a generator). ldap3's own receiving joins a
    message's pieces by copying what it has so far for each 4 KB it reads: a group of 100,000 members is a
    10 MB message, copied some 2,500 times. A DC that closes the connection, or says nothing within the
    connection's timeout, ends it with ldap3's errors (the connection is closed, as ldap3 closes it)."""
    from ldap3.core.exceptions import LDAPSessionTerminatedByServerError, LDAPSocketReceiveError
    from ldap3.strategy.base import BaseStrategy

    buffer = bytearray()
    while True:
        size = BaseStrategy.compute_ldap_message_size(buffer)
        while size < 0 or len(buffer) < size:
            try:
                data = conn.socket.recv(RECEIVE_SIZE)
            except OSError as exc:
                conn.strategy.close()
                raise LDAPSocketReceiveError(f"error receiving data: {exc}") from None
            if not data:
                conn.strategy.close()
                raise LDAPSessionTerminatedByServerError(f"the connection closed while reading the answer to {base}")
            buffer += data
            size = BaseStrategy.compute_ldap_message_size(buffer)
        message = bytes(buffer[:size])
        del buffer[:size]
        yield message


def _read_failure(what: str, exc: Exception) -> DomainReadError:
    """A read the client library broke off: the connection (transient) or the request itself (permanent)."""
    from ldap3.core.exceptions import LDAPCommunicationError, LDAPResponseTimeoutError

    broken = isinstance(exc, (LDAPCommunicationError, LDAPResponseTimeoutError, OSError))
    return (DomainBusy if broken else DomainReadFailed)(f"{what} failed: {type(exc).__name__}: {exc}")


def read_entry(conn, dn: str, attributes: list[str]) -> dict | None:
    """The attributes of the entry at `dn` (names as the domain spells them); None only when the domain
    says noSuchObject (32); any other failure raises DomainReadError."""
    from ldap3.core.exceptions import LDAPException

    what = f"reading {dn or 'the root DSE'}"
    try:
        conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=attributes)
    except (LDAPException, OSError) as exc:
        raise _read_failure(what, exc) from None
    if (conn.result or {}).get("result") == NO_SUCH_OBJECT:
        return None
    check_result(conn, what)
    entry = next((e for e in conn.response or [] if e.get("type") == "searchResEntry"), None)
    if entry is None:
        raise DomainReadFailed(f"{what}: the domain answered success without the entry; nothing read is used")
    return entry["attributes"]


def entry_exists(conn, dn: str) -> bool:
    """Whether an entry exists: missing only when the domain says noSuchObject (32); any other error raises."""
    return read_entry(conn, dn, ["objectClass"]) is not None


_FOREST_PARTITION_HEADS = ((("cn", "configuration"),), (("cn", "schema"), ("cn", "configuration")),
                           (("dc", "domaindnszones"),), (("dc", "forestdnszones"),))


def _names_forest_partition(url: str) -> bool:
    """Whether an LDAP URL names the Configuration, Schema or a DNS application partition of a forest: its
    DN (read by domain_sync.dn, escapes and all) is one of those heads over DC= components only. A DN that
    cannot be read names none of them."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path).lstrip("/")
    try:
        rdns = [tuple((a.lower(), v.lower()) for a, v in rdn) for rdn in parse_dn(path)]
    except DNError:
        return False
    for head in _FOREST_PARTITION_HEADS:
        rest = rdns[len(head):]
        if tuple(rdns[:len(head)]) == tuple((ava,) for ava in head) and rest and all(
                len(rdn) == 1 and rdn[0][0] == "dc" for rdn in rest):
            return True
    return False


def ldap_values(value: Any) -> list[str]:
    """An attribute as ldap3 returns it (absent, one value, or a list; str or bytes) as a list of str."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in items]


def object_kind(attributes: Mapping[str, Any]) -> str | None:
    """"user" or "group" for an entry the sync may hold (by its objectClass), None for anything else:
    a computer is a user to LDAP but never a synced one."""
    from domain_sync.records import GROUP, USER  # records loads pyarrow: not at DAG parse time

    classes = {c.lower() for name, value in attributes.items() if name.lower() == "objectclass"
               for c in ldap_values(value)}
    if "group" in classes:
        return GROUP
    if "user" in classes and "computer" not in classes:
        return USER
    return None


def is_owned(attributes: Mapping[str, Any], owner_attribute: str | None, owner_marker: str | None) -> bool:
    """The ownership rule: an anchored entry is this sync's only when `owner_attribute` holds the marker
    (the anchor alone proves nothing in a hybrid domain); without an owner attribute, every anchored
    entry is."""
    if not (owner_attribute and owner_marker):
        return True
    return any(owner_marker in ldap_values(value) for name, value in attributes.items()
               if name.lower() == owner_attribute.lower())


def encode_anchor(attribute: str, object_id: str) -> bytes | str:
    """The anchor value for a tenant object id: 16 GUID bytes for binary attributes (in AD's
    byte order, as Entra Connect writes mS-DS-ConsistencyGuid), the id as text otherwise."""
    if attribute.lower() in ANCHOR_BINARY_ATTRIBUTES:
        return uuid.UUID(object_id).bytes_le
    return object_id


def decode_anchor(attribute: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
        if value is None:
            return None
    if attribute.lower() in ANCHOR_BINARY_ATTRIBUTES:
        if isinstance(value, str):  # ldap3 may hand back a formatted GUID, or the bytes decoded as UTF-8
            try:
                return str(uuid.UUID(value.strip("{}")))
            except ValueError:
                value = value.encode("utf-8")
        if len(value) != 16:
            return None
        return str(uuid.UUID(bytes_le=bytes(value)))
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def anchor_filter_value(attribute: str, object_id: str) -> str:
    """An LDAP filter assertion value for the anchor (binary values as escaped bytes)."""
    from ldap3.utils.conv import escape_filter_chars

    value = encode_anchor(attribute, object_id)
    if isinstance(value, bytes):
        return "".join(f"\\{b:02x}" for b in value)
    return escape_filter_chars(value)
