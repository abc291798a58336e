"""The emulator's two listeners: Microsoft Graph (plain HTTP) with the admin API, and the token endpoint (HTTPS)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .certs import CertPaths
from .faults import FaultSet, FaultSpecError, Rule
from .tenant import GROUPS, KINDS, GraphError, Tenant

JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
OAUTH_JSON_TYPE = "application/json; charset=utf-8"
TOKEN_LIFETIME = 3599
MAX_TOP = 999
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_SUPPORTED_LIST_OPTIONS = {"$select", "$top", "$skiptoken"}
_SUPPORTED_DELTA_OPTIONS = {"$select", "$top", "$skiptoken", "$deltatoken"}
_SUPPORTED_GET_OPTIONS = {"$select"}
_DOLLAR_OPTIONAL = {"select", "top", "skiptoken", "deltatoken", "filter", "expand", "orderby", "count", "search"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def encode_json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), check_circular=False).encode("utf-8")


class TokenIssuer:
    """Issues and checks the emulator's access tokens: JWT-shaped, HMAC-SHA256 signed with a per-process key."""

    def __init__(self, tenant_id: str, client_id: str, lifetime: int = TOKEN_LIFETIME):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.lifetime = lifetime
        self._key = os.urandom(32)
        self._header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())

    def issue(self, scope: str) -> str:
        now = int(time.time())
        resource = scope.rsplit("/.default", 1)[0] if scope else ""
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "appid": self.client_id,
            "tid": self.tenant_id,
            "roles": ["User.Read.All", "Group.Read.All", "GroupMember.Read.All"],
            "jti": uuid.uuid4().hex,
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{body}".encode()
        sig = _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())
        return f"{self._header}.{body}.{sig}"

    def check(self, token: str) -> str | None:
        """None when the token is good, otherwise why not."""
        parts = token.split(".")
        if len(parts) != 3:
            return "The access token is malformed."
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return "Access token validation failure. Invalid signature."
        try:
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            return "The access token is malformed."
        if claims.get("exp", 0) < time.time():
            return "Lifetime validation failed, the token is expired."
        if claims.get("tid") != self.tenant_id:
            return "Access token validation failure. Invalid audience."
        return None


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, dict[str, int]]] = {"graph": defaultdict(dict), "token": defaultdict(dict)}

    def record(self, target: str, path: str, status: int | str) -> None:
        key = str(status)
        with self._lock:
            bucket = self._counts[target][path]
            bucket[key] = bucket.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            graph = {p: dict(v) for p, v in self._counts["graph"].items()}
            token = {p: dict(v) for p, v in self._counts["token"].items()}
        return {
            "requests": graph,
            "token_requests": token,
            "total_requests": sum(sum(v.values()) for v in graph.values()),
            "total_token_requests": sum(sum(v.values()) for v in token.values()),
        }

    def reset(self) -> None:
        with self._lock:
            self._counts = {"graph": defaultdict(dict), "token": defaultdict(dict)}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple, handler: type, emulator: Emulator, ssl_context: ssl.SSLContext | None = None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.emulator = emulator
        self.ssl_context = ssl_context
        super().__init__(address, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.emulator.verbose:
            super().handle_error(request, client_address)


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TenantEmulator/1.0"
    sys_version = ""
    timeout = 300
    server: _Server
    target = "graph"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        # Counted before the answer leaves, so a client that reads the stats right after sees it.
        if self._route:
            self.emulator.stats.record(self.target, self._route, status)
        self.send_response(status)
        if content_type and body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        # Headers and body leave in one write: two small writes meet Nagle and delayed ACKs (40 ms a page).
        self._headers_buffer.append(b"\r\n")
        if body and self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def _drop(self) -> None:
        if self._route:
            self.emulator.stats.record(self.target, self._route, "dropped")
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    _route: str | None = None


class GraphHandler(_BaseHandler):
    target = "graph"

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ---------------------------------------------------------------- plumbing

    def _request_ids(self) -> dict[str, str]:
        rid = str(uuid.uuid4())
        return {"request-id": rid, "client-request-id": self.headers.get("client-request-id") or rid}

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        hdrs = self._request_ids()
        hdrs.update(headers or {})
        body = b"" if doc is None else encode_json(doc)
        self._send(status, body, JSON_TYPE, hdrs)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        ids = self._request_ids()
        doc = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": _now_iso(),
                    "request-id": ids["request-id"],
                    "client-request-id": ids["client-request-id"],
                },
            }
        }
        hdrs = dict(ids)
        hdrs.update(headers or {})
        self._send(status, encode_json(doc), JSON_TYPE, hdrs)

    def _base_url(self) -> str:
        host = self.headers.get("Host", "")
        if not _HOST_RE.match(host):
            host = self.emulator.graph_netloc
        return f"{self.emulator.graph_scheme}://{host}"

    def _dispatch(self, method: str) -> None:
        self._route = None
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            if path == "/admin" or path.startswith("/admin/"):
                self._admin(method, path, query, body)
                return
            segments = [unquote(s) for s in path.strip("/").split("/") if s]
            route, handler, args = self._match(segments)
            self._route = route
            decision = self.emulator.faults.decide("graph", method, path)
            if decision.delay:
                time.sleep(decision.delay)
            if decision.rule is not None:
                self._apply_fault(decision.rule)
                return
            if not self._authorized():
                return
            if handler is None:
                self._error(404, "Request_ResourceNotFound", f"Resource not found for the segment '{path}'.")
                return
            if method != "GET":
                self._error(405, "Request_BadRequest", f"The method {method} is not allowed on '{path}'.")
                return
            options = {}
            for key, values in query.items():
                name = key.lower()
                if not name.startswith("$"):
                    if name not in _DOLLAR_OPTIONAL:
                        continue  # plain parameters Graph does not know are ignored, as Graph does
                    name = f"${name}"
                options[name] = values[-1]
            handler(options, *args)
        except GraphError as exc:
            self._error(exc.status, exc.code, exc.message)
        except FaultSpecError as exc:
            self._error(400, "Request_BadRequest", str(exc))
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - answered in Graph's shape rather than a dropped connection
            self._error(500, "generalException", f"The emulator failed on this request: {exc!r}")

    def _match(self, seg: list[str]):
        if len(seg) < 2 or seg[0] != "v1.0" or seg[1] not in KINDS:
            return "other", None, ()
        kind = seg[1]
        if len(seg) == 2:
            return f"/v1.0/{kind}", self._list, (kind,)
        if len(seg) == 3 and seg[2] in ("delta", "delta()"):
            return f"/v1.0/{kind}/delta", self._delta, (kind,)
        if len(seg) == 3:
            return f"/v1.0/{kind}/{{id}}", self._get, (kind, seg[2])
        if len(seg) == 4 and kind == GROUPS and seg[3] == "members":
            return "/v1.0/groups/{id}/members", self._members, (seg[2],)
        return "other", None, ()

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            self._error(401, "InvalidAuthenticationToken", "Access token is empty.")
            return False
        if scheme.lower() != "bearer" or not token.strip():
            self._error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid scheme.")
            return False
        problem = self.emulator.issuer.check(token.strip())
        if problem:
            self._error(401, "InvalidAuthenticationToken", problem)
            return False
        return True

    def _apply_fault(self, rule: Rule) -> None:
        if rule.kind == "drop":
            self._drop()
            return
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(rule.retry_after))
        status = int(rule.status or 500)
        messages = {
            429: "Too many requests. Retry after the time given in Retry-After.",
            503: "Service is unavailable. Try again later.",
            504: "The gateway timed out.",
        }
        self._error(status, rule.code or "UnknownError", messages.get(status, f"Scripted fault (rule {rule.id})."), headers)

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

    def _context(self, kind: str, select: str | None, suffix: str = "") -> str:
        sel = f"({select})" if select else ""
        return f"{self._base_url()}/v1.0/$metadata#{kind}{sel}{suffix}"

    # ---------------------------------------------------------------- Graph endpoints

    def _list(self, options: dict[str, str], kind: str) -> None:
        self._check_options(options, _SUPPORTED_LIST_OPTIONS)
        page = self.emulator.tenant.list_page(
            kind, token=options.get("$skiptoken"), top=self._top(options), select=options.get("$select")
        )
        doc: dict[str, Any] = {"@odata.context": self._context(kind, options.get("$select"))}
        if page.next_token:
            doc["@odata.nextLink"] = f"{self._base_url()}/v1.0/{kind}?$skiptoken={page.next_token}"
        doc["value"] = page.items
        self._json(200, doc)

    def _max_page_size(self) -> tuple[int | None, dict[str, str]]:
        prefer = self.headers.get("Prefer", "")
        match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
        if not match:
            return None, {}
        size = max(1, min(int(match.group(1)), MAX_TOP))
        return size, {"Preference-Applied": f"odata.maxpagesize={size}"}

    def _delta(self, options: dict[str, str], kind: str) -> None:
        self._check_options(options, _SUPPORTED_DELTA_OPTIONS)
        skip, delta = options.get("$skiptoken"), options.get("$deltatoken")
        if skip and delta:
            raise GraphError(400, "Request_BadRequest", "Use either $skiptoken or $deltatoken, not both.")
        page_size, headers = self._max_page_size()
        page = self.emulator.tenant.delta(
            kind, token=skip or delta or None, select=options.get("$select"), page_size=page_size
        )
        base = f"{self._base_url()}/v1.0/{kind}/delta"
        doc: dict[str, Any] = {"@odata.context": self._context(kind, options.get("$select"), "/delta")}
        if page.next_token:
            doc["@odata.nextLink"] = f"{base}?$skiptoken={page.next_token}"
        doc["value"] = page.items
        if page.delta_token:
            doc["@odata.deltaLink"] = f"{base}?$deltatoken={page.delta_token}"
        self._json(200, doc, headers)

    def _get(self, options: dict[str, str], kind: str, oid: str) -> None:
        self._check_options(options, _SUPPORTED_GET_OPTIONS)
        item = self.emulator.tenant.get(kind, oid, select=options.get("$select"))
        doc = {"@odata.context": self._context(kind, options.get("$select"), "/$entity")}
        doc.update(item)
        self._json(200, doc)

    def _members(self, options: dict[str, str], gid: str) -> None:
        self._check_options(options, _SUPPORTED_LIST_OPTIONS)
        page = self.emulator.tenant.members_page(
            gid, token=options.get("$skiptoken"), top=self._top(options), select=options.get("$select")
        )
        doc: dict[str, Any] = {"@odata.context": f"{self._base_url()}/v1.0/$metadata#directoryObjects"}
        if page.next_token:
            doc["@odata.nextLink"] = f"{self._base_url()}/v1.0/groups/{gid}/members?$skiptoken={page.next_token}"
        doc["value"] = page.items
        self._json(200, doc)

    # ---------------------------------------------------------------- admin API

    def _admin(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        em = self.emulator
        seg = [unquote(s) for s in path.strip("/").split("/")][1:]
        payload: Any = None
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                raise GraphError(400, "Request_BadRequest", "The body is not valid JSON.") from None

        def need_body() -> Any:
            if payload is None:
                raise GraphError(400, "Request_BadRequest", "A JSON body is required.")
            return payload

        if seg == ["health"] and method == "GET":
            self._json(200, {"status": "ok", "sequence": em.tenant.sequence})
            return
        if seg == ["faults"]:
            if method == "GET":
                self._json(200, {"faults": em.faults.describe()})
            elif method == "POST":
                added = em.faults.add(need_body())
                self._json(201, {"added": added, "faults": em.faults.describe()})
            elif method == "DELETE":
                em.faults.clear()
                self._json(204, None)
            else:
                raise GraphError(405, "Request_BadRequest", f"{method} is not allowed on {path}.")
            return
        if seg == ["settings"]:
            if method in ("PUT", "PATCH"):
                body_obj = need_body()
                if not isinstance(body_obj, dict):
                    raise GraphError(400, "Request_BadRequest", "The body must be a JSON object.")
                em.tenant.settings.update(body_obj)
            elif method != "GET":
                raise GraphError(405, "Request_BadRequest", f"{method} is not allowed on {path}.")
            self._json(200, em.tenant.settings.as_dict())
            return
        if seg == ["stats"]:
            if method == "DELETE":
                em.stats.reset()
                self._json(204, None)
                return
            doc = em.stats.snapshot()
            doc["objects"] = em.tenant.counts()
            doc["faults"] = em.faults.describe()
            self._json(200, doc)
            return
        if seg == ["export"] and method == "GET":
            self._json(200, em.tenant.export())
            return
        if seg and seg[0] in KINDS:
            self._admin_objects(method, seg, query, need_body, payload)
            return
        raise GraphError(404, "Request_ResourceNotFound", f"No admin resource at {path}.")

    def _admin_objects(self, method: str, seg: list[str], query: dict[str, list[str]], need_body, payload) -> None:
        tenant = self.emulator.tenant
        kind = seg[0]
        if len(seg) == 1 and method == "POST":
            self._json(201, tenant.create(kind, need_body()))
            return
        if len(seg) == 2:
            oid = seg[1]
            if method == "PATCH":
                self._json(200, tenant.update(kind, oid, need_body()))
                return
            if method == "DELETE":
                permanent = (query.get("permanent") or ["false"])[-1].lower() in ("1", "true", "yes")
                tenant.delete(kind, oid, permanent=permanent)
                self._json(204, None)
                return
            if method == "GET":
                status = tenant.status(kind, oid)
                if status is None:
                    raise GraphError(404, "Request_ResourceNotFound", f"Resource '{oid}' does not exist.")
                self._json(200, {"id": oid, "status": status, "sequence": tenant.object_sequence(kind, oid)})
                return
        if len(seg) == 3 and seg[2] == "restore" and method == "POST":
            self._json(200, tenant.restore(kind, seg[1]))
            return
        if kind == GROUPS and len(seg) == 3 and seg[2] == "members":
            if method == "POST":
                ref = need_body()
                if isinstance(ref, str):
                    ref = {"id": ref}
                if not isinstance(ref, dict) or not ref.get("id"):
                    raise GraphError(400, "Request_BadRequest", "The body needs the member's 'id'.")
                self._json(201, tenant.add_member(seg[1], str(ref["id"]), ref.get("@odata.type")))
                return
            if method == "GET":
                self._json(200, {"value": tenant.members_of(seg[1])})
                return
        if kind == GROUPS and len(seg) == 4 and seg[2] == "members" and method == "DELETE":
            tenant.remove_member(seg[1], seg[3])
            self._json(204, None)
            return
        raise GraphError(404, "Request_ResourceNotFound", f"No admin resource at /admin/{'/'.join(seg)} for {method}.")


class TokenHandler(_BaseHandler):
    target = "token"

    def _oauth_error(self, status: int, error: str, description: str, codes: list[int] | None = None) -> None:
        doc = {
            "error": error,
            "error_description": description,
            "error_codes": codes or [],
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }
        self._send(status, encode_json(doc), OAUTH_JSON_TYPE)

    def _ok(self, doc: dict) -> None:
        self._send(200, encode_json(doc), OAUTH_JSON_TYPE, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _dispatch(self, method: str) -> None:
        self._route = None
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.strip("/").split("/") if s]
        em = self.emulator
        route, action = "other", None
        if len(segments) >= 2 and segments[-2:] == ["discovery", "instance"]:
            route, action = "/common/discovery/instance", "instance"
        elif len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            route, action = "/{tenant}/v2.0/.well-known/openid-configuration", "openid"
        elif len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
            route, action = "/{tenant}/oauth2/v2.0/token", "token"
        self._route = route
        try:
            decision = em.faults.decide("token", method, split.path)
            if decision.delay:
                time.sleep(decision.delay)
            rule = decision.rule
            if rule is not None:
                if rule.kind == "drop":
                    self._drop()
                elif rule.kind == "refuse_token":
                    self._oauth_error(
                        401,
                        "invalid_client",
                        "AADSTS7000215: Invalid client secret provided. (scripted fault)",
                        [7000215],
                    )
                else:
                    headers = {}
                    if rule.retry_after is not None:
                        headers["Retry-After"] = str(math.ceil(rule.retry_after))
                    status = int(rule.status or 500)
                    error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
                    doc = {"error": error, "error_description": f"Scripted fault (rule {rule.id}).", "error_codes": []}
                    self._send(status, encode_json(doc), OAUTH_JSON_TYPE, headers)
                return
            if action is None:
                self._oauth_error(404, "invalid_request", f"AADSTS90002: No endpoint at '{split.path}'.", [90002])
                return
            if action == "instance":
                self._instance_discovery(split.query)
                return
            tenant = segments[0]
            if tenant.lower() not in em.tenant_aliases:
                self._oauth_error(
                    400,
                    "invalid_tenant",
                    f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
                    [90002],
                )
                return
            if action == "openid":
                if method != "GET":
                    self._oauth_error(405, "invalid_request", "Use GET.")
                    return
                self._ok(em.openid_configuration(tenant))
                return
            if method != "POST":
                self._oauth_error(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.", [900561])
                return
            self._token(body)
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True

    def _instance_discovery(self, query: str) -> None:
        em = self.emulator
        host = em.token_netloc
        self._ok(
            {
                "tenant_discovery_endpoint": f"{em.authority}/{em.tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    def _token(self, body: bytes) -> None:
        em = self.emulator
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
                client_id = client_id or unquote(user)
                client_secret = client_secret or unquote(password)
            except (ValueError, binascii.Error):
                pass
        grant = form.get("grant_type")
        if grant != "client_credentials":
            self._oauth_error(
                400,
                "unsupported_grant_type",
                f"AADSTS70003: The app requested an unsupported grant type '{grant}'.",
                [70003],
            )
            return
        if "client_assertion" in form and not client_secret:
            self._oauth_error(
                401, "invalid_client", "AADSTS700027: Client assertions are not supported by the emulator.", [700027]
            )
            return
        if not client_id or not hmac.compare_digest(client_id, em.client_id):
            self._oauth_error(
                401,
                "invalid_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory.",
                [700016],
            )
            return
        if not client_secret or not hmac.compare_digest(client_secret.encode(), em.client_secret.encode()):
            self._oauth_error(
                401,
                "invalid_client",
                f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                [7000215],
            )
            return
        scope = form.get("scope", "").strip()
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            self._oauth_error(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope '{scope}' is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
                [1002012],
            )
            return
        self._ok(
            {
                "token_type": "Bearer",
                "expires_in": em.issuer.lifetime,
                "ext_expires_in": em.issuer.lifetime,
                "access_token": em.issuer.issue(scopes[0]),
            }
        )


class Emulator:
    """Both listeners around one tenant. start() binds and serves in background threads; stop() ends them."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        certs: CertPaths,
        host: str = "127.0.0.1",
        graph_port: int = 0,
        token_port: int = 0,
        verbose: bool = False,
        graph_tls: bool = False,
        advertise_host: str | None = None,
    ):
        self.tenant = tenant
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.certs = certs
        self.host = host
        self.graph_tls = graph_tls
        self.graph_scheme = "https" if graph_tls else "http"
        if advertise_host is None:
            advertise_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        self.advertise_host = advertise_host
        self.verbose = verbose
        self.faults = FaultSet()
        self.stats = Stats()
        self.issuer = TokenIssuer(tenant_id, client_id)
        self.tenant_aliases = {tenant_id.lower(), "organizations"}
        domain = tenant.info.get("domain")
        if domain:
            self.tenant_aliases.add(str(domain).lower())
        self._graph_port = graph_port
        self._token_port = token_port
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def _netloc(self, port: int) -> str:
        host = f"[{self.advertise_host}]" if ":" in self.advertise_host else self.advertise_host
        return f"{host}:{port}"

    @property
    def graph_netloc(self) -> str:
        return self._netloc(self._servers[0].server_address[1])

    @property
    def token_netloc(self) -> str:
        return self._netloc(self._servers[1].server_address[1])

    @property
    def graph_url(self) -> str:
        return f"{self.graph_scheme}://{self.graph_netloc}"

    @property
    def authority(self) -> str:
        return f"https://{self.token_netloc}"

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.authority}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": f"{self.authority}/{self.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.graph_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": self.graph_netloc,
        }

    def start(self) -> Emulator:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.certs.cert_file), str(self.certs.key_file))
        graph = _Server((self.host, self._graph_port), GraphHandler, self, ssl_context=ctx if self.graph_tls else None)
        token = _Server((self.host, self._token_port), TokenHandler, self, ssl_context=ctx)
        self._servers = [graph, token]
        for name, server in (("graph", graph), ("token", token)):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"emulator-{name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
