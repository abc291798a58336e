"""The admin API under /admin on the Graph listener: tenant changes, faults, settings, stats, export.

No bearer token, JSON in and out, errors in Graph's shape; faults never apply to it and it is not
counted in the stats. The client for it is emulator.admin.EmulatorAdmin.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import unquote

from .faults import FaultSet
from .tenant import GROUPS, OBJECT_KINDS, GraphError, Tenant
from .wire import Reply, Request, graph_json


class StatsLike(Protocol):
    def snapshot(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...


class AdminHost(Protocol):
    """What the admin API needs from the emulator around it."""

    tenant: Tenant
    faults: FaultSet
    stats: StatsLike


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


class AdminApi:
    def __init__(self, host: AdminHost):
        self.host = host

    def serve(self, request: Request) -> Reply:
        em = self.host
        method, path = request.method, request.path
        seg = [unquote(s) for s in path.strip("/").split("/")][1:]
        payload: Any = None
        if request.body:
            try:
                payload = json.loads(request.body)
            except ValueError:
                raise GraphError(400, "Request_BadRequest", "The body is not valid JSON.") from None

        def need_body() -> Any:
            if payload is None:
                raise GraphError(400, "Request_BadRequest", "A JSON body is required.")
            return payload

        def ok(status: int, doc: Any) -> Reply:
            return graph_json(request, status, doc)

        if seg == ["health"] and method == "GET":
            return ok(200, {"status": "ok", "sequence": em.tenant.sequence})
        if seg == ["faults"]:
            if method == "GET":
                return ok(200, {"faults": em.faults.describe()})
            if method == "POST":
                added = em.faults.add(need_body())
                return ok(201, {"added": added, "faults": em.faults.describe()})
            if method == "DELETE":
                em.faults.clear()
                return ok(204, None)
            raise GraphError(405, "Request_BadRequest", f"{method} is not allowed on {path}.")
        if seg == ["settings"]:
            if method in ("PUT", "PATCH"):
                body_obj = need_body()
                if not isinstance(body_obj, dict):
                    raise GraphError(400, "Request_BadRequest", "The body must be a JSON object.")
                em.tenant.settings.update(body_obj)
            elif method != "GET":
                raise GraphError(405, "Request_BadRequest", f"{method} is not allowed on {path}.")
            return ok(200, em.tenant.settings.as_dict())
        if seg == ["stats"]:
            if method == "DELETE":
                em.stats.reset()
                return ok(204, None)
            doc = em.stats.snapshot()
            doc["objects"] = em.tenant.counts()
            doc["faults"] = em.faults.describe()
            return ok(200, doc)
        if seg == ["export"] and method == "GET":
            return ok(200, em.tenant.export())
        if seg == ["deletedItems"] and method == "GET":
            return ok(200, em.tenant.deleted_items())
        if seg and seg[0] in OBJECT_KINDS:
            return self._objects(request, seg, need_body)
        raise GraphError(404, "Request_ResourceNotFound", f"No admin resource at {path}.")

    def _objects(self, request: Request, seg: list[str], need_body) -> Reply:
        tenant = self.host.tenant
        method = request.method
        kind = seg[0]
        if len(seg) == 1 and method == "POST":
            return graph_json(request, 201, tenant.create(kind, need_body()))
        if len(seg) == 2:
            oid = seg[1]
            if method == "PATCH":
                return graph_json(request, 200, tenant.update(kind, oid, need_body()))
            if method == "DELETE":
                permanent = (request.query.get("permanent") or ["false"])[-1].lower() in ("1", "true", "yes")
                tenant.delete(kind, oid, permanent=permanent)
                return graph_json(request, 204, None)
            if method == "GET":
                status = tenant.status(kind, oid)
                if status is None:
                    raise GraphError(404, "Request_ResourceNotFound", f"Resource '{oid}' does not exist.")
                return graph_json(request, 200, {"id": oid, "status": status, "sequence": tenant.object_sequence(kind, oid)})
        if len(seg) == 3 and seg[2] == "restore" and method == "POST":
            return graph_json(request, 200, tenant.restore(kind, seg[1]))
        if kind == GROUPS and len(seg) == 3 and seg[2] == "members":
            if method == "POST":
                ref = need_body()
                if isinstance(ref, str):
                    ref = {"id": ref}
                if not isinstance(ref, dict) or not ref.get("id"):
                    raise GraphError(400, "Request_BadRequest", "The body needs the member's 'id'.")
                return graph_json(request, 201, tenant.add_member(seg[1], str(ref["id"]), ref.get("@odata.type")))
            if method == "GET":
                return graph_json(request, 200, {"value": tenant.members_of(seg[1])})
        if kind == GROUPS and len(seg) == 4 and seg[2] == "members" and method == "DELETE":
            tenant.remove_member(seg[1], seg[3])
            return graph_json(request, 204, None)
        raise GraphError(404, "Request_ResourceNotFound", f"No admin resource at /admin/{'/'.join(seg)} for {method}.")
