"""Which password-change events were applied, per user: `<state dir>/credentials/ledger` (a document:
storage.update_document; `ledger.json` of earlier releases is read while it has no entry).

The ledger is written right after each password is set and before the event is marked consumed in its
source, so a crash in between leaves an event the next try recognizes as applied (a replay: nothing is
written again). It also holds the time of the last applied event of each user, which makes an older
event stale. It is the sync's own record, kept beside the committed state (and, like it, 0600).
"""

from __future__ import annotations

from datetime import datetime

from domain_sync.passwords.stores import PasswordChange, parse_time
from domain_sync.storage import StoragePath, read_document, update_document

KEEP_EVENTS = 100  # applied event ids kept per user (replays of older ones are stale anyway)


class Ledger:
    def __init__(self, path: StoragePath):
        self.path = path
        self.users: dict[str, dict] = (read_document(self.path, {}) or {}).get("users", {})

    @classmethod
    def in_state(cls, state_dir: StoragePath) -> Ledger:
        return cls(state_dir / "credentials" / "ledger.json")

    def last_applied_at(self, object_id: str) -> datetime | None:
        return parse_time((self.users.get(object_id) or {}).get("last_applied_at"))

    def applied(self, event: PasswordChange) -> bool:
        return event.event_id in (self.users.get(event.object_id) or {}).get("applied", [])

    def record(self, event: PasswordChange) -> None:
        """Remember the event as applied, in storage at once."""

        def note(current: dict | None) -> dict:
            users = {k: dict(v) for k, v in ((current or {}).get("users") or {}).items()}
            _note(users, event)
            return {"users": users}

        self.users = update_document(self.path, note)["users"]


def _note(users: dict[str, dict], event: PasswordChange) -> None:
    user = users.setdefault(event.object_id, {"applied": []})
    user["applied"] = [*user.get("applied", []), event.event_id][-KEEP_EVENTS:]
    last = parse_time(user.get("last_applied_at"))
    if last is None or event.changed_at > last:
        user["last_applied_at"] = event.changed_at.isoformat()
