"""The emulator's two listeners around one tenant, and the dispatch of their requests.

The Graph listener (plain HTTP, or HTTPS with graph_tls) serves the Graph API and, under /admin,
the admin API; the token listener (HTTPS) serves the identity platform; the vault listener (HTTPS)
serves Azure Key Vault's secrets (keyvault.py). Dispatch is the same for
both: read the request, find the route, let the scripted faults have their say, then answer.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .admin_api import AdminApi, is_admin_path
from .certs import CertPaths
from .faults import FaultSet, FaultSpecError
from .graph_api import GraphApi
from .identity import IdentityApi, TokenIssuer, openid_configuration
from .keyvault import KeyVaultApi, Vault
from .tenant import GraphError, Tenant
from .wire import Reply, Request, graph_error


class Stats:
    """Request counts per listener and route template, by status ("dropped" for a dropped connection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, dict[str, int]]] = self._empty()

    @staticmethod
    def _empty() -> dict[str, dict[str, dict[str, int]]]:
        return {"graph": defaultdict(dict), "token": defaultdict(dict), "vault": defaultdict(dict)}

    def record(self, target: str, path: str, status: int | str) -> None:
        key = str(status)
        with self._lock:
            bucket = self._counts[target][path]
            bucket[key] = bucket.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            graph = {p: dict(v) for p, v in self._counts["graph"].items()}
            token = {p: dict(v) for p, v in self._counts["token"].items()}
            vault = {p: dict(v) for p, v in self._counts["vault"].items()}
        return {
            "requests": graph,
            "token_requests": token,
            "vault_requests": vault,
            "total_requests": sum(sum(v.values()) for v in graph.values()),
            "total_token_requests": sum(sum(v.values()) for v in token.values()),
        }

    def reset(self) -> None:
        with self._lock:
            self._counts = self._empty()


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
    _route: str | None = None

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

    def _read_request(self, method: str) -> Request | None:
        """The request with its body read; None (and the connection closed) when the body cannot be read."""
        self._route = None
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return None
        split = urlsplit(self.path)
        return Request(
            method=method,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            segments=[unquote(s) for s in split.path.strip("/").split("/") if s],
            headers=self.headers,
            body=body,
        )

    def _answer(self, api: Any, request: Request) -> None:
        """Route, scripted faults, then the API's answer."""
        route, target = api.match(request)
        self._route = route
        decision = self.emulator.faults.decide(self.target, request.method, request.path)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.rule is not None:
            self._reply(api.fault_reply(request, decision.rule))
            return
        self._reply(api.serve(request, target))

    def _reply(self, reply: Reply) -> None:
        if reply.drop:
            self._drop()
        else:
            self._send(reply.status, reply.body, reply.content_type, reply.headers)

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

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError


class GraphHandler(_BaseHandler):
    """The Graph listener: the Graph API, and the admin API under /admin (no faults, not counted)."""

    target = "graph"

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        request = self._read_request(method)
        if request is None:
            return
        try:
            if is_admin_path(request.path):
                self._reply(self.emulator.admin_api.serve(request))
                return
            self._answer(self.emulator.graph_api, request)
        except GraphError as exc:
            self._reply(graph_error(request, exc.status, exc.code, exc.message))
        except FaultSpecError as exc:
            self._reply(graph_error(request, 400, "Request_BadRequest", str(exc)))
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - answered in Graph's shape rather than a dropped connection
            self._reply(graph_error(request, 500, "generalException", f"The emulator failed on this request: {exc!r}"))


class TokenHandler(_BaseHandler):
    """The token listener: the identity platform."""

    target = "token"

    def _dispatch(self, method: str) -> None:
        request = self._read_request(method)
        if request is None:
            return
        try:
            self._answer(self.emulator.identity_api, request)
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True


class VaultHandler(_BaseHandler):
    """The vault listener: Azure Key Vault's secrets."""

    target = "vault"

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        request = self._read_request(method)
        if request is None:
            return
        try:
            self._answer(self.emulator.vault_api, request)
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True


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
        vault_port: int = 0,
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
        self.graph_api = GraphApi(self)
        self.admin_api = AdminApi(self)
        self.identity_api = IdentityApi(self)
        self.vault = Vault()
        self.vault_api = KeyVaultApi(self)
        self._graph_port = graph_port
        self._token_port = token_port
        self._vault_port = vault_port
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
    def vault_netloc(self) -> str:
        return self._netloc(self._servers[2].server_address[1])

    @property
    def vault_url(self) -> str:
        return f"https://{self.vault_netloc}"

    @property
    def graph_url(self) -> str:
        return f"{self.graph_scheme}://{self.graph_netloc}"

    @property
    def authority(self) -> str:
        return f"https://{self.token_netloc}"

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        return openid_configuration(self, tenant)

    def start(self) -> Emulator:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.certs.cert_file), str(self.certs.key_file))
        graph = _Server((self.host, self._graph_port), GraphHandler, self, ssl_context=ctx if self.graph_tls else None)
        token = _Server((self.host, self._token_port), TokenHandler, self, ssl_context=ctx)
        vault = _Server((self.host, self._vault_port), VaultHandler, self, ssl_context=ctx)
        self._servers = [graph, token, vault]
        for name, server in (("graph", graph), ("token", token), ("vault", vault)):
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
