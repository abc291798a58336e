"""Credential stores: what a sink takes (initial passwords) and a source gives (password changes), the
two interfaces, and the settings that choose an implementation (keyvault, dropfolder).

Passwords live only in these records on their way between a store and the domain: their repr hides the
password, and nothing here logs, stages or returns one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from domain_sync.config import Settings, SettingsError
from domain_sync.errors import PermanentError, TransientError

# What became of an event; each is written back to the source (a Key Vault tag, the envelope's folder).
APPLIED = "applied"
STALE = "stale"  # older than the last event applied for that user: ignored
REPLAYED = "replayed"  # an event already applied (its mark was lost, or it was dropped in again): no write
REFUSED = "refused"  # the domain refused the password (too short, in the history...): not retried
REJECTED = "rejected"  # not readable as an event (does not decrypt, verify or parse): never applied
OUTCOMES = (APPLIED, STALE, REPLAYED, REFUSED, REJECTED)


class StoreUnavailable(TransientError):
    """The store did not answer (network, throttling, a 5xx); a later try may succeed."""


class StoreRefused(PermanentError):
    """The store refused the sync's credentials or request, or its connection is wrong."""


@dataclass(frozen=True)
class InitialPassword:
    """A new account's first password, handed to the sink before the account is created."""

    object_id: str
    user_principal_name: str | None
    account_name: str | None
    password: str = field(repr=False)
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PasswordChange:
    """One password change from a source: for the user with tenant object id `object_id`, made at
    `changed_at`. `event_id` is unique per event (a replay carries the same one); `origin` says where it
    came from (a secret version, an envelope file), for reports."""

    object_id: str
    password: str = field(repr=False)
    changed_at: datetime
    event_id: str
    origin: str


@dataclass(frozen=True)
class SetAside:
    """Something in a source that is not a usable event; moved aside or marked, never applied."""

    origin: str
    reason: str


class CredentialSink(Protocol):
    name: str

    def deliver_initial(self, item: InitialPassword) -> None:
        """Store the initial password where the person or a helpdesk picks it up (replacing an earlier one)."""


class CredentialSource(Protocol):
    name: str

    def pending(self) -> tuple[list[PasswordChange], list[SetAside]]:
        """The events not marked consumed yet, and what could not be read as one (already set aside)."""

    def mark(self, event: PasswordChange, outcome: str) -> None:
        """Record in the source that the event is consumed, with its outcome (one of OUTCOMES)."""


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with its zone (a trailing Z is UTC); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def now() -> datetime:
    return datetime.now(UTC)


def airflow_connection(conn_id: str):
    """The Airflow connection `conn_id` of a credential store; StoreRefused when it is not defined."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow raises its own "not defined" error types
        raise StoreRefused(f"credential store connection {conn_id!r} is not defined: {type(exc).__name__}") from None


def _open(kind: str, conn_id: str, connection: Callable[[str], Any]):
    conn = connection(conn_id)
    if kind == "keyvault":
        from domain_sync.passwords.keyvault import KeyVaultStore

        return KeyVaultStore.from_connection(conn, conn_id)
    if kind == "dropfolder":
        from domain_sync.passwords.dropfolder import DropFolderStore

        return DropFolderStore.from_connection(conn, conn_id)
    raise SettingsError(f"unknown credential store {kind!r}")


def open_sink(settings: Settings, connection: Callable[[str], Any] = airflow_connection) -> CredentialSink | None:
    """The sink DOMAIN_SYNC_CREDENTIAL_SINK names, from its Airflow connection; None for "none"."""
    if settings.credential_sink == "none" or settings.initial_password != "random":
        return None
    return _open(settings.credential_sink, settings.credential_sink_conn_id, connection)


def open_source(settings: Settings, connection: Callable[[str], Any] = airflow_connection) -> CredentialSource | None:
    """The source DOMAIN_SYNC_CREDENTIAL_SOURCE names, from its Airflow connection; None for "none"."""
    if settings.credential_source == "none":
        return None
    return _open(settings.credential_source, settings.credential_source_conn_id, connection)
