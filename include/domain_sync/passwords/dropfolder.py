"""A drop folder of encrypted envelopes: a credential sink and source on a shared or local file system.

Every envelope is a Fernet token (AES-128-CBC with HMAC-SHA256: encrypted and authenticated) of one JSON
document, made with a key from the store's Airflow connection (conn type `fs`: extra `path` = the folder,
password = the key, or several keys comma-separated, the first encrypting, for rotation). Layout:

    inbox/      password changes dropped in by a producer: {"type": "password_change", "event_id",
                "object_id", "password", "changed_at"}
    consumed/   envelopes whose event was applied, found stale or replayed (moved here, never deleted)
    rejected/   envelopes that do not decrypt, verify or parse, and events the domain refused
    initial/    one envelope per user the sync created: {"type": "initial_password", "object_id",
                "userPrincipalName", "sAMAccountName", "password", "created_at", "expires_at"}

Envelopes are written atomically (a temporary name, then a rename), files 0600 in 0700 folders.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from domain_sync.errors import PermanentError
from domain_sync.naming import is_object_id
from domain_sync.passwords.stores import (
    REFUSED,
    REJECTED,
    InitialPassword,
    PasswordChange,
    SetAside,
    StoreRefused,
    StoreUnavailable,
    now,
    parse_time,
)

SUFFIX = ".fernet"
FOLDERS = ("inbox", "consumed", "rejected", "initial")
NOT_SEALED = "does not decrypt or verify with the connection's key (corrupt, or another key)"
NOT_A_DOCUMENT = "decrypts but is not a JSON object"


class EnvelopeUnreadable(PermanentError):
    """An envelope that does not decrypt or verify with the connection's key, or holds no JSON object: a
    password change in the inbox is set aside; an initial password cannot be read."""


class DropFolderStore:
    name = "dropfolder"

    def __init__(self, path: str | os.PathLike, keys: list[str]):
        if not keys:
            raise StoreRefused("the drop folder needs a Fernet key (the connection's password)")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError):
            raise StoreRefused("the drop folder's key is not a Fernet key (32 url-safe base64 bytes)") from None
        self.path = Path(path)
        for folder in FOLDERS:
            self._folder(folder)

    @classmethod
    def from_connection(cls, conn: Any, conn_id: str = "credential_store") -> DropFolderStore:
        path = (getattr(conn, "extra_dejson", None) or {}).get("path") or getattr(conn, "host", None)
        if not path:
            raise StoreRefused(f"connection {conn_id!r}: the drop folder's path goes in extra.path")
        return cls(path, [k for k in (getattr(conn, "password", None) or "").split(",") if k.strip()])

    def _folder(self, name: str) -> Path:
        folder = self.path / name
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"drop folder {self.path}: {type(exc).__name__}: {exc.strerror}") from None
        return folder

    # -- envelopes ------------------------------------------------------------------------------------
    def seal(self, document: dict) -> bytes:
        return self._fernet.encrypt(json.dumps(document).encode("utf-8"))

    def open(self, token: bytes) -> dict:
        """The envelope's document; EnvelopeUnreadable (saying why) when it does not decrypt or verify, or
        is not a JSON object."""
        try:
            document = json.loads(self._fernet.decrypt(token).decode("utf-8"))
        except InvalidToken:
            raise EnvelopeUnreadable(NOT_SEALED) from None
        except (ValueError, UnicodeDecodeError):
            raise EnvelopeUnreadable(NOT_A_DOCUMENT) from None
        if not isinstance(document, dict):
            raise EnvelopeUnreadable(NOT_A_DOCUMENT)
        return document

    def _write(self, folder: str, name: str, data: bytes) -> Path:
        target = self._folder(folder) / name
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StoreUnavailable(f"drop folder {self.path}: {type(exc).__name__}: {exc.strerror}") from None
        return target

    # -- sink -----------------------------------------------------------------------------------------
    def deliver_initial(self, item: InitialPassword) -> None:
        self._write("initial", f"{item.object_id}{SUFFIX}", self.seal({
            "type": "initial_password", "object_id": item.object_id, "userPrincipalName": item.user_principal_name,
            "sAMAccountName": item.account_name, "password": item.password,
            "created_at": item.created_at.isoformat(), "expires_at": item.expires_at.isoformat()}))

    def read_initial(self, object_id: str) -> dict | None:
        """The initial-password envelope of a user, opened (for the helpdesk's command); None when absent."""
        path = self.path / "initial" / f"{object_id}{SUFFIX}"
        if not path.exists():
            return None
        try:
            return self.open(path.read_bytes())
        except EnvelopeUnreadable as exc:
            raise EnvelopeUnreadable(f"drop folder {self.path}: the initial password envelope of user {object_id} "
                                     f"(initial/{path.name}) {exc}") from None
        except OSError as exc:
            raise StoreUnavailable(f"drop folder {self.path}: {type(exc).__name__}: {exc.strerror}") from None

    # -- source ---------------------------------------------------------------------------------------
    def drop_change(self, object_id: str, password: str, changed_at: datetime, event_id: str | None = None) -> Path:
        """Put a password change into the inbox (what a producer does; also the command line's `change`)."""
        event_id = event_id or str(uuid.uuid4())
        name = f"{changed_at.strftime('%Y%m%dT%H%M%S%fZ')}-{event_id}{SUFFIX}"
        return self._write("inbox", name, self.seal({
            "type": "password_change", "event_id": event_id, "object_id": object_id, "password": password,
            "changed_at": changed_at.isoformat()}))

    def pending(self) -> tuple[list[PasswordChange], list[SetAside]]:
        events: list[PasswordChange] = []
        set_aside: list[SetAside] = []
        for path in sorted(self._folder("inbox").iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue  # a producer's temporary file
            origin = f"inbox/{path.name}"
            reason = None
            try:
                document = self.open(path.read_bytes())
            except EnvelopeUnreadable as exc:
                reason = str(exc)
            except OSError as exc:
                raise StoreUnavailable(f"drop folder {self.path}: {type(exc).__name__}: {exc.strerror}") from None
            else:
                event = _event(document, origin)
                if isinstance(event, str):
                    reason = event
                else:
                    events.append(event)
            if reason:
                self._move(path, "rejected")
                set_aside.append(SetAside(origin, reason))
        return events, set_aside

    def mark(self, event: PasswordChange, outcome: str) -> None:
        path = self.path / event.origin
        if path.exists():
            self._move(path, "rejected" if outcome in (REFUSED, REJECTED) else "consumed")

    def _move(self, path: Path, folder: str) -> None:
        target = self._folder(folder) / path.name
        if target.exists():  # the same envelope dropped in twice: keep both
            target = target.with_name(f"{target.stem}.{now().strftime('%Y%m%dT%H%M%S%f')}{SUFFIX}")
        try:
            os.replace(path, target)
        except OSError as exc:
            raise StoreUnavailable(f"drop folder {self.path}: {type(exc).__name__}: {exc.strerror}") from None


def _event(document: dict, origin: str) -> PasswordChange | str:
    """The event in an opened envelope, or why it is not one."""
    if document.get("type") != "password_change":
        return "not a password change (type is not password_change)"
    if not is_object_id(document.get("object_id")):
        return "object_id is not a tenant object id"
    if not isinstance(document.get("password"), str) or not document["password"]:
        return "no password"
    changed_at = parse_time(document.get("changed_at"))
    if changed_at is None:
        return "changed_at is not an ISO 8601 time with a zone"
    event_id = document.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return "no event_id"
    return PasswordChange(document["object_id"], document["password"], changed_at, f"dropfolder:{event_id}", origin)
