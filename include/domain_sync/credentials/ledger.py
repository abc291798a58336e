"""Which password-change events were applied, per user: `<state dir>/credentials/ledger.json`.

The ledger is written right after each password is set and before the event is marked consumed in its
source, so a crash in between leaves an event the next try recognizes as applied (a replay: nothing is
written again). It also holds the time of the last applied event of each user, which makes an older
event stale. It is the sync's own record, kept beside the committed state (and, like it, 0600).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from domain_sync.passwords.stores import PasswordChange, parse_time
from domain_sync.runs import locked, read_json, write_json_atomic

KEEP_EVENTS = 100  # applied event ids kept per user (replays of older ones are stale anyway)


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.users: dict[str, dict] = (read_json(self.path, {}) or {}).get("users", {})

    @classmethod
    def in_state(cls, state_dir: Path | str) -> Ledger:
        return cls(Path(state_dir) / "credentials" / "ledger.json")

    def last_applied_at(self, object_id: str) -> datetime | None:
        return parse_time((self.users.get(object_id) or {}).get("last_applied_at"))

    def applied(self, event: PasswordChange) -> bool:
        return event.event_id in (self.users.get(event.object_id) or {}).get("applied", [])

    def record(self, event: PasswordChange) -> None:
        """Remember the event as applied, on disk at once."""
        user = self.users.setdefault(event.object_id, {"applied": []})
        user["applied"] = [*user.get("applied", []), event.event_id][-KEEP_EVENTS:]
        last = self.last_applied_at(event.object_id)
        if last is None or event.changed_at > last:
            user["last_applied_at"] = event.changed_at.isoformat()
        with locked(self.path):
            write_json_atomic(self.path, {"users": self.users})
