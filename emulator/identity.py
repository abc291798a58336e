"""The identity platform: the client-credentials token endpoint, OpenID discovery, MSAL's instance discovery,
and the access tokens themselves (JWT-shaped, HMAC-SHA256 signed with a key made at start).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import time
import uuid
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from .faults import Rule
from .wire import DROP, OAUTH_JSON_TYPE, Reply, Request, encode_json

TOKEN_LIFETIME = 3599


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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


class IdentityHost(Protocol):
    """What the identity platform needs from the emulator around it."""

    tenant_id: str
    client_id: str
    client_secret: str
    tenant_aliases: set[str]
    issuer: TokenIssuer
    authority: str
    token_netloc: str
    graph_url: str
    graph_netloc: str


def openid_configuration(host: IdentityHost, tenant: str) -> dict[str, Any]:
    """The tenant's OpenID configuration document (v2.0 endpoints)."""
    authority = host.authority
    base = f"{authority}/{host.tenant_id}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{authority}/{host.tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{host.graph_url}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host.graph_netloc,
    }


def oauth_error(status: int, error: str, description: str, codes: list[int] | None = None) -> Reply:
    doc = {
        "error": error,
        "error_description": description,
        "error_codes": codes or [],
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
    return Reply(status, encode_json(doc), OAUTH_JSON_TYPE)


def _ok(doc: dict) -> Reply:
    return Reply(200, encode_json(doc), OAUTH_JSON_TYPE, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


class IdentityApi:
    def __init__(self, host: IdentityHost):
        self.host = host

    def match(self, request: Request) -> tuple[str, str | None]:
        """(route template for the stats, action or None for an unknown endpoint)."""
        segments = request.segments
        if len(segments) >= 2 and segments[-2:] == ["discovery", "instance"]:
            return "/common/discovery/instance", "instance"
        if len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return "/{tenant}/v2.0/.well-known/openid-configuration", "openid"
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
            return "/{tenant}/oauth2/v2.0/token", "token"
        return "other", None

    def fault_reply(self, request: Request, rule: Rule) -> Reply:
        if rule.kind == "drop":
            return DROP
        if rule.kind == "refuse_token":
            return oauth_error(
                401, "invalid_client", "AADSTS7000215: Invalid client secret provided. (scripted fault)", [7000215]
            )
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(rule.retry_after))
        status = int(rule.status or 500)
        error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
        doc = {"error": error, "error_description": f"Scripted fault (rule {rule.id}).", "error_codes": []}
        return Reply(status, encode_json(doc), OAUTH_JSON_TYPE, headers)

    def serve(self, request: Request, action: str | None) -> Reply:
        host = self.host
        if action is None:
            return oauth_error(404, "invalid_request", f"AADSTS90002: No endpoint at '{request.path}'.", [90002])
        if action == "instance":
            return self._instance_discovery()
        tenant = request.segments[0]
        if tenant.lower() not in host.tenant_aliases:
            return oauth_error(
                400,
                "invalid_tenant",
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
                [90002],
            )
        if action == "openid":
            if request.method != "GET":
                return oauth_error(405, "invalid_request", "Use GET.")
            return _ok(openid_configuration(host, tenant))
        if request.method != "POST":
            return oauth_error(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.", [900561])
        return self._token(request)

    def _instance_discovery(self) -> Reply:
        host = self.host
        netloc = host.token_netloc
        return _ok(
            {
                "tenant_discovery_endpoint": f"{host.authority}/{host.tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": netloc, "preferred_cache": netloc, "aliases": [netloc]}],
            }
        )

    def _token(self, request: Request) -> Reply:
        host = self.host
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
                client_id = client_id or unquote(user)
                client_secret = client_secret or unquote(password)
            except (ValueError, binascii.Error):
                pass
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return oauth_error(
                400,
                "unsupported_grant_type",
                f"AADSTS70003: The app requested an unsupported grant type '{grant}'.",
                [70003],
            )
        if "client_assertion" in form and not client_secret:
            return oauth_error(
                401, "invalid_client", "AADSTS700027: Client assertions are not supported by the emulator.", [700027]
            )
        if not client_id or not hmac.compare_digest(client_id, host.client_id):
            return oauth_error(
                401,
                "invalid_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory.",
                [700016],
            )
        if not client_secret or not hmac.compare_digest(client_secret.encode(), host.client_secret.encode()):
            return oauth_error(
                401,
                "invalid_client",
                f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                [7000215],
            )
        scope = form.get("scope", "").strip()
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return oauth_error(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope '{scope}' is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
                [1002012],
            )
        return _ok(
            {
                "token_type": "Bearer",
                "expires_in": host.issuer.lifetime,
                "ext_expires_in": host.issuer.lifetime,
                "access_token": host.issuer.issue(scopes[0]),
            }
        )
