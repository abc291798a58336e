"""A small client for the emulator's admin API (stdlib urllib)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote


class AdminError(RuntimeError):
    """The admin API answered an error: status, and the Graph error body."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        message = body.get("error", {}).get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status} {code}: {message}")

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict):
            return self.body.get("error", {}).get("code")
        return None


class EmulatorAdmin:
    """Scripts changes, faults and settings of a running emulator.

    graph_url: e.g. http://127.0.0.1:PORT; ca_file: the emulator's ca.pem, for an https graph_url.
    """

    def __init__(self, graph_url: str, timeout: float = 30.0, ca_file: str | None = None):
        self.graph_url = graph_url.rstrip("/")
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if ca_file:
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(f"{self.graph_url}/admin{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise AdminError(exc.code, parsed) from None
        return json.loads(raw) if raw else None

    # users
    def create_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return self.create_object("users", user)

    def update_user(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.update_object("users", user_id, changes)

    def delete_user(self, user_id: str, permanent: bool = False) -> None:
        self.delete_object("users", user_id, permanent)

    def restore_user(self, user_id: str) -> dict[str, Any]:
        return self.restore_object("users", user_id)

    # groups
    def create_group(self, group: dict[str, Any]) -> dict[str, Any]:
        return self.create_object("groups", group)

    def update_group(self, group_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.update_object("groups", group_id, changes)

    def delete_group(self, group_id: str, permanent: bool = False) -> None:
        self.delete_object("groups", group_id, permanent)

    def restore_group(self, group_id: str) -> dict[str, Any]:
        return self.restore_object("groups", group_id)

    # other directory objects that can be members of groups: kind is "devices", "servicePrincipals" or
    # "contacts" (organizational contacts); users and groups work here too
    def create_object(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/{kind}", obj)

    def update_object(self, kind: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/{kind}/{quote(object_id, safe='')}", changes)

    def delete_object(self, kind: str, object_id: str, permanent: bool = False) -> None:
        suffix = "?permanent=true" if permanent else ""
        self.request("DELETE", f"/{kind}/{quote(object_id, safe='')}{suffix}")

    def restore_object(self, kind: str, object_id: str) -> dict[str, Any]:
        return self.request("POST", f"/{kind}/{quote(object_id, safe='')}/restore")

    def create_device(self, device: dict[str, Any]) -> dict[str, Any]:
        return self.create_object("devices", device)

    def create_service_principal(self, service_principal: dict[str, Any]) -> dict[str, Any]:
        return self.create_object("servicePrincipals", service_principal)

    def create_contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        """An organizational contact (orgContact)."""
        return self.create_object("contacts", contact)

    def add_member(self, group_id: str, member_id: str, odata_type: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": member_id}
        if odata_type:
            body["@odata.type"] = odata_type
        return self.request("POST", f"/groups/{quote(group_id, safe='')}/members", body)

    def remove_member(self, group_id: str, member_id: str) -> None:
        self.request("DELETE", f"/groups/{quote(group_id, safe='')}/members/{quote(member_id, safe='')}")

    def members(self, group_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/groups/{quote(group_id, safe='')}/members")["value"]

    def object_status(self, kind: str, object_id: str) -> dict[str, Any]:
        """{"id", "status": present|softDeleted|deleted, "sequence"}; kind is "users" or "groups"."""
        return self.request("GET", f"/{kind}/{quote(object_id, safe='')}")

    # faults, settings, stats
    def set_faults(self, *rules: dict[str, Any]) -> list[dict[str, Any]]:
        """Add fault rules (see README.md); returns all active rules."""
        return self.request("POST", "/faults", {"faults": list(rules)})["faults"]

    def faults(self) -> list[dict[str, Any]]:
        return self.request("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self.request("DELETE", "/faults")

    def settings(self, **values: Any) -> dict[str, Any]:
        """Change settings (delta_link_max_age_seconds, page_size, members_page_size); returns all settings."""
        if values:
            return self.request("PUT", "/settings", values)
        return self.request("GET", "/settings")

    def stats(self) -> dict[str, Any]:
        return self.request("GET", "/stats")

    def reset_stats(self) -> None:
        self.request("DELETE", "/stats")

    def export(self) -> dict[str, Any]:
        """The current tenant in the tenant file's shape."""
        return self.request("GET", "/export")

    def deleted_items(self) -> dict[str, list[dict[str, Any]]]:
        """The soft-deleted (restorable) objects: {"users": [...], "groups": [...], "devices": [...], ...}."""
        return self.request("GET", "/deletedItems")

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")
