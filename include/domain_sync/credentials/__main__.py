"""The helpdesk's and the producers' side of the credential stores, from the sync's settings and connections:

    python -m domain_sync.credentials initial OBJECT_ID   print the user's initial password (the sink)
    python -m domain_sync.credentials change OBJECT_ID    a new password (read from stdin) for the source
    python -m domain_sync.credentials key                 a new Fernet key for a drop folder's connection

The password is printed to stdout only (never logged); run it where stdout is private.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime

from domain_sync.config import Settings
from domain_sync.errors import SyncError
from domain_sync.naming import is_object_id
from domain_sync.passwords.stores import airflow_connection, now


def _store(kind: str, conn_id: str):
    if kind == "keyvault":
        from domain_sync.passwords.keyvault import KeyVaultStore

        return KeyVaultStore.from_connection(airflow_connection(conn_id), conn_id)
    if kind == "dropfolder":
        from domain_sync.passwords.dropfolder import DropFolderStore

        return DropFolderStore.from_connection(airflow_connection(conn_id), conn_id)
    raise SystemExit(f"no credential store configured ({kind!r}): see README, Credentials")


def main(argv: list[str]) -> int:
    if argv[:1] == ["key"]:
        from cryptography.fernet import Fernet

        print(Fernet.generate_key().decode())
        return 0
    if len(argv) != 2 or argv[0] not in ("initial", "change") or not is_object_id(argv[1]):
        print(__doc__, file=sys.stderr)
        return 2
    settings = Settings.from_env()
    command, object_id = argv
    try:
        if command == "initial":
            envelope = _store(settings.credential_sink, settings.credential_sink_conn_id).read_initial(object_id)
            if not envelope:
                print(f"no initial password for {object_id}", file=sys.stderr)
                return 1
            expires = envelope.get("expires_at")
            if expires and datetime.fromisoformat(str(expires)) <= now():
                # The store keeps it (Key Vault does not refuse an expired secret); it is not handed out.
                print(f"the initial password of {object_id} expired at {expires}: reset the user's password in "
                      f"the domain instead", file=sys.stderr)
                return 1
            print(envelope["password"])
            print(f"expires {envelope.get('expires_at')}", file=sys.stderr)
            return 0
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            print("no password on stdin", file=sys.stderr)
            return 2
        store = _store(settings.credential_source, settings.credential_source_conn_id)
        changed_at = now()
        store.drop_change(object_id, password, changed_at, str(uuid.uuid4()))
        print(f"password change for {object_id} queued ({store.name}, {changed_at.isoformat()})", file=sys.stderr)
        return 0
    except SyncError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
