"""Microsoft Graph v1.0 as the emulator serves it: users and groups, their delta queries, members, paging.

Bearer tokens are checked here (the identity platform issues them); query options, links and
error answers follow Graph's shapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from .faults import Rule
from .identity import TokenIssuer
from .tenant import GROUPS, KINDS, GraphError, Tenant
from .wire import DROP, Reply, Request, graph_error, graph_json

MAX_TOP = 999
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_SUPPORTED_LIST_OPTIONS = {"$select", "$top", "$skiptoken"}
_SUPPORTED_DELTA_OPTIONS = {"$select", "$top", "$skiptoken", "$deltatoken"}
_SUPPORTED_GET_OPTIONS = {"$select"}
_DOLLAR_OPTIONAL = {"select", "top", "skiptoken", "deltatoken", "filter", "expand", "orderby", "count", "search"}
_FAULT_MESSAGES = {
    429: "Too many requests. Retry after the time given in Retry-After.",
    503: "Service is unavailable. Try again later.",
    504: "The gateway timed out.",
}


class GraphHost(Protocol):
    """What the Graph API needs from the emulator around it."""

    tenant: Tenant
    issuer: TokenIssuer
    graph_scheme: str

    @property
    def graph_netloc(self) -> str: ...


Endpoint = Callable[..., Reply]


class GraphApi:
    def __init__(self, host: GraphHost):
        self.host = host

    # ---------------------------------------------------------------- routing

    def match(self, request: Request) -> tuple[str, tuple[Endpoint, tuple] | None]:
        """(route template for the stats, (endpoint, arguments) or None for an unknown resource)."""
        seg = request.segments
        if len(seg) < 2 or seg[0] != "v1.0" or seg[1] not in KINDS:
            return "other", None
        kind = seg[1]
        if len(seg) == 2:
            return f"/v1.0/{kind}", (self._list, (kind,))
        if len(seg) == 3 and seg[2] in ("delta", "delta()"):
            return f"/v1.0/{kind}/delta", (self._delta, (kind,))
        if len(seg) == 3:
            return f"/v1.0/{kind}/{{id}}", (self._get, (kind, seg[2]))
        if len(seg) == 4 and kind == GROUPS and seg[3] == "members":
            return "/v1.0/groups/{id}/members", (self._members, (seg[2],))
        return "other", None

    def serve(self, request: Request, target: tuple[Endpoint, tuple] | None) -> Reply:
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        if target is None:
            return graph_error(request, 404, "Request_ResourceNotFound", f"Resource not found for the segment '{request.path}'.")
        if request.method != "GET":
            return graph_error(
                request, 405, "Request_BadRequest", f"The method {request.method} is not allowed on '{request.path}'."
            )
        endpoint, args = target
        return endpoint(request, self._options(request), *args)

    def fault_reply(self, request: Request, rule: Rule) -> Reply:
        if rule.kind == "drop":
            return DROP
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(rule.retry_after))
        status = int(rule.status or 500)
        message = _FAULT_MESSAGES.get(status, f"Scripted fault (rule {rule.id}).")
        return graph_error(request, status, rule.code or "UnknownError", message, headers)

    # ---------------------------------------------------------------- plumbing

    @staticmethod
    def _options(request: Request) -> dict[str, str]:
        options = {}
        for key, values in request.query.items():
            name = key.lower()
            if not name.startswith("$"):
                if name not in _DOLLAR_OPTIONAL:
                    continue  # plain parameters Graph does not know are ignored, as Graph does
                name = f"${name}"
            options[name] = values[-1]
        return options

    def _unauthorized(self, request: Request) -> Reply | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            return graph_error(request, 401, "InvalidAuthenticationToken", "Access token is empty.")
        if scheme.lower() != "bearer" or not token.strip():
            return graph_error(request, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid scheme.")
        problem = self.host.issuer.check(token.strip())
        if problem:
            return graph_error(request, 401, "InvalidAuthenticationToken", problem)
        return None

    def base_url(self, request: Request) -> str:
        """The scheme and host the client used (links must name them, or the hook refuses them)."""
        host = request.headers.get("Host", "")
        if not _HOST_RE.match(host):
            host = self.host.graph_netloc
        return f"{self.host.graph_scheme}://{host}"

    @staticmethod
    def _check_options(options: dict[str, str], allowed: set[str]) -> None:
        for name in options:
            if name not in allowed:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"The query option '{name}' is not supported by the emulator on this resource.",
                )

    @staticmethod
    def _top(options: dict[str, str]) -> int | None:
        raw = options.get("$top")
        if raw is None:
            return None
        try:
            top = int(raw)
        except ValueError:
            top = 0
        if not 1 <= top <= MAX_TOP:
            raise GraphError(
                400, "Request_BadRequest", f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_TOP} inclusive."
            )
        return top

    @staticmethod
    def _max_page_size(request: Request) -> tuple[int | None, dict[str, str]]:
        prefer = request.headers.get("Prefer", "")
        match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
        if not match:
            return None, {}
        size = max(1, min(int(match.group(1)), MAX_TOP))
        return size, {"Preference-Applied": f"odata.maxpagesize={size}"}

    def _context(self, request: Request, kind: str, select: str | None, suffix: str = "") -> str:
        sel = f"({select})" if select else ""
        return f"{self.base_url(request)}/v1.0/$metadata#{kind}{sel}{suffix}"

    # ---------------------------------------------------------------- endpoints

    def _list(self, request: Request, options: dict[str, str], kind: str) -> Reply:
        self._check_options(options, _SUPPORTED_LIST_OPTIONS)
        page = self.host.tenant.list_page(
            kind, token=options.get("$skiptoken"), top=self._top(options), select=options.get("$select")
        )
        doc: dict[str, Any] = {"@odata.context": self._context(request, kind, options.get("$select"))}
        if page.next_token:
            doc["@odata.nextLink"] = f"{self.base_url(request)}/v1.0/{kind}?$skiptoken={page.next_token}"
        doc["value"] = page.items
        return graph_json(request, 200, doc)

    def _delta(self, request: Request, options: dict[str, str], kind: str) -> Reply:
        self._check_options(options, _SUPPORTED_DELTA_OPTIONS)
        skip, delta = options.get("$skiptoken"), options.get("$deltatoken")
        if skip and delta:
            raise GraphError(400, "Request_BadRequest", "Use either $skiptoken or $deltatoken, not both.")
        page_size, headers = self._max_page_size(request)
        page = self.host.tenant.delta(kind, token=skip or delta or None, select=options.get("$select"), page_size=page_size)
        base = f"{self.base_url(request)}/v1.0/{kind}/delta"
        doc: dict[str, Any] = {"@odata.context": self._context(request, kind, options.get("$select"), "/delta")}
        if page.next_token:
            doc["@odata.nextLink"] = f"{base}?$skiptoken={page.next_token}"
        doc["value"] = page.items
        if page.delta_token:
            doc["@odata.deltaLink"] = f"{base}?$deltatoken={page.delta_token}"
        return graph_json(request, 200, doc, headers)

    def _get(self, request: Request, options: dict[str, str], kind: str, oid: str) -> Reply:
        self._check_options(options, _SUPPORTED_GET_OPTIONS)
        item = self.host.tenant.get(kind, oid, select=options.get("$select"))
        doc = {"@odata.context": self._context(request, kind, options.get("$select"), "/$entity")}
        doc.update(item)
        return graph_json(request, 200, doc)

    def _members(self, request: Request, options: dict[str, str], gid: str) -> Reply:
        self._check_options(options, _SUPPORTED_LIST_OPTIONS)
        page = self.host.tenant.members_page(
            gid, token=options.get("$skiptoken"), top=self._top(options), select=options.get("$select")
        )
        base = self.base_url(request)
        doc: dict[str, Any] = {"@odata.context": f"{base}/v1.0/$metadata#directoryObjects"}
        if page.next_token:
            doc["@odata.nextLink"] = f"{base}/v1.0/groups/{gid}/members?$skiptoken={page.next_token}"
        doc["value"] = page.items
        return graph_json(request, 200, doc)
