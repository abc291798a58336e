"""Azure Key Vault's secrets data plane, as far as a credential store needs it, behind the client's
challenge flow.

Routes (all with `?api-version=`, any version the client sends): `PUT /secrets/{name}` (a new version),
`GET /secrets/{name}[/{version}]` (no version: the latest), `PATCH /secrets/{name}/{version}` (content
type, attributes, tags), `GET /secrets` and `GET /secrets/{name}/versions` (paged: `maxresults` 1 to 25,
`nextLink` with `$skiptoken`). Shapes follow the Key Vault REST API (SecretBundle, SecretItem, times in
Unix seconds, errors as {"error": {"code", "message", "innererror"?}}).

Authentication: a request without a valid bearer token for the resource https://vault.azure.net (issued
by the emulator's token endpoint, `scope=https://vault.azure.net/.default`) answers 401 with the
challenge SecretClient's ChallengeAuthPolicy reads:
`WWW-Authenticate: Bearer authorization="<authority>/<tenant id>", resource="https://vault.azure.net"`.
The client's first request of a pipeline goes without a token (and without its body) to elicit it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from .faults import Rule
from .identity import TokenIssuer
from .wire import DROP, Reply, Request, encode_json, request_ids

RESOURCE = "https://vault.azure.net"
MAX_RESULTS = 25
NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_TAGS = 15
JSON_TYPE = "application/json; charset=utf-8"


class VaultError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


def vault_error(request: Request, status: int, code: str, message: str, inner: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    hdrs = {"x-ms-request-id": request_ids(request)["request-id"], **(headers or {})}
    return Reply(status, encode_json({"error": error}), JSON_TYPE, hdrs)


@dataclass
class SecretVersion:
    version: str
    value: str = field(repr=False)
    content_type: str | None
    tags: dict[str, str]
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"enabled": self.enabled, "created": self.created, "updated": self.updated,
                                 "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
        if self.nbf is not None:
            attrs["nbf"] = self.nbf
        if self.exp is not None:
            attrs["exp"] = self.exp
        return attrs


class Vault:
    """The secrets of one vault, in memory: name (case-insensitive, as Key Vault) -> versions, oldest first."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, tuple[str, list[SecretVersion]]] = {}

    def _versions(self, name: str) -> tuple[str, list[SecretVersion]]:
        found = self._secrets.get(name.lower())
        if found is None:
            raise VaultError(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault. "
                             "If you recently deleted this secret you may be able to recover it using the correct "
                             "recovery command.")
        return found

    def set(self, name: str, body: Any) -> tuple[str, SecretVersion]:
        _check_name(name)
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise VaultError(400, "BadParameter", "Property value is required and must be a string.")
        attrs = _attributes(body.get("attributes"))
        now = int(self.clock())
        version = SecretVersion(uuid.uuid4().hex, body["value"], body.get("contentType"), _tags(body.get("tags")),
                                attrs.get("enabled", True), attrs.get("nbf"), attrs.get("exp"), now, now)
        with self._lock:
            display, versions = self._secrets.setdefault(name.lower(), (name, []))
            versions.append(version)
        return display, version

    def get(self, name: str, version: str | None) -> tuple[str, SecretVersion]:
        with self._lock:
            display, versions = self._versions(name)
            found = self._find(name, versions, version)
        if not found.enabled:
            raise VaultError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
        return display, found

    def update(self, name: str, version: str, body: Any) -> tuple[str, SecretVersion]:
        if not isinstance(body, dict):
            raise VaultError(400, "BadParameter", "The request body must be a JSON object.")
        attrs = _attributes(body.get("attributes"))
        tags = _tags(body["tags"]) if "tags" in body else None
        with self._lock:
            display, versions = self._versions(name)
            found = self._find(name, versions, version)
            if "contentType" in body:
                found.content_type = body["contentType"]
            for key in ("enabled", "nbf", "exp"):
                if key in attrs:
                    setattr(found, key, attrs[key])
            if tags is not None:
                found.tags = tags
            found.updated = int(self.clock())
        return display, found

    def latest(self) -> list[tuple[str, SecretVersion]]:
        with self._lock:
            return [(display, versions[-1]) for display, versions in
                    sorted(self._secrets.values(), key=lambda e: e[0].lower())]

    def versions(self, name: str) -> tuple[str, list[SecretVersion]]:
        with self._lock:
            display, versions = self._versions(name)
            return display, list(versions)

    @staticmethod
    def _find(name: str, versions: list[SecretVersion], version: str | None) -> SecretVersion:
        if not version:
            return versions[-1]
        for v in versions:
            if v.version == version.lower():
                return v
        raise VaultError(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found in this "
                         "key vault.")


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise VaultError(400, "BadParameter", "The request URI contains an invalid name: " + name)


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise VaultError(400, "BadParameter", "Property attributes must be an object.")
    out: dict[str, Any] = {}
    if "enabled" in value:
        if not isinstance(value["enabled"], bool):
            raise VaultError(400, "BadParameter", "Property enabled must be a boolean.")
        out["enabled"] = value["enabled"]
    for key in ("nbf", "exp"):
        if key in value:
            if value[key] is not None and (isinstance(value[key], bool) or not isinstance(value[key], (int, float))):
                raise VaultError(400, "BadParameter", f"Property {key} must be a number of seconds.")
            out[key] = None if value[key] is None else int(value[key])
    return out


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_TAGS or any(
            not isinstance(v, str) or len(str(k)) > 512 or len(v) > 256 for k, v in value.items()):
        raise VaultError(400, "BadParameter", f"Tags must be at most {MAX_TAGS} string values of up to 256 characters.")
    return {str(k): v for k, v in value.items()}


class VaultHost(Protocol):
    """What the vault API needs from the emulator around it."""

    tenant_id: str
    issuer: TokenIssuer
    authority: str
    vault: Vault
    vault_netloc: str


def _token_audience(token: str) -> str | None:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("aud")
    except (IndexError, ValueError, binascii.Error, AttributeError):
        return None


class KeyVaultApi:
    def __init__(self, host: VaultHost):
        self.host = host

    def match(self, request: Request) -> tuple[str, tuple | None]:
        seg = request.segments
        if not seg or seg[0] != "secrets":
            return "other", None
        if len(seg) == 1:
            return "/secrets", ("list",)
        if len(seg) == 2:
            return "/secrets/{name}", ("secret", seg[1], None)
        if len(seg) == 3 and seg[2] == "versions" and request.method == "GET":
            return "/secrets/{name}/versions", ("versions", seg[1])
        if len(seg) == 3:
            return "/secrets/{name}/{version}", ("secret", seg[1], seg[2])
        return "other", None

    def fault_reply(self, request: Request, rule: Rule) -> Reply:
        if rule.kind == "drop":
            return DROP
        headers = {"Retry-After": str(math.ceil(rule.retry_after))} if rule.retry_after is not None else {}
        status = int(rule.status or (429 if rule.kind == "throttle" else 500))
        code = rule.code or ("Throttled" if status == 429 else "InternalServerError")
        return vault_error(request, status, code, f"Scripted fault (rule {rule.id}).", headers=headers)

    def challenge(self, request: Request, message: str) -> Reply:
        header = f'Bearer authorization="{self.host.authority}/{self.host.tenant_id}", resource="{RESOURCE}"'
        return vault_error(request, 401, "Unauthorized", message, headers={"WWW-Authenticate": header})

    def serve(self, request: Request, target: tuple | None) -> Reply:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            return self.challenge(request, "AKV10000: Request is missing a Bearer or PoP token.")
        problem = self.host.issuer.check(token.strip())
        if problem:
            return self.challenge(request, f"AKV10032: Invalid issuer or token. {problem}")
        if _token_audience(token.strip()) != RESOURCE:
            return self.challenge(request, f"AKV10022: Invalid audience. Expected {RESOURCE}.")
        if not (request.query.get("api-version") or [""])[-1]:
            return vault_error(request, 400, "BadParameter", "The request URI contains an invalid or missing "
                               "api-version.")
        if target is None:
            return vault_error(request, 404, "NotFound", f"No Key Vault operation at {request.path}.")
        try:
            return self._serve(request, target)
        except VaultError as exc:
            return vault_error(request, exc.status, exc.code, exc.message, exc.inner)

    def _serve(self, request: Request, target: tuple) -> Reply:
        vault, method = self.host.vault, request.method
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                raise VaultError(400, "BadParameter", "The request body is not valid JSON.") from None
        if target[0] == "list" and method == "GET":
            items = [self._item(name, v, with_version=False) for name, v in vault.latest()]
            return self._page(request, "/secrets", items)
        if target[0] == "versions":
            name, versions = vault.versions(target[1])
            return self._page(request, f"/secrets/{name}/versions",
                              [self._item(name, v, with_version=True) for v in versions])
        _, name, version = target
        if method == "PUT" and version is None:
            return self._bundle(request, *vault.set(name, body))
        if method == "GET":
            return self._bundle(request, *vault.get(name, version))
        if method == "PATCH" and version:
            display, found = vault.update(name, version, body)
            return self._bundle(request, display, found, with_value=False)
        raise VaultError(405, "BadParameter", f"{method} is not allowed on {request.path}.")

    def _base(self, request: Request) -> str:
        host = request.headers.get("Host") or self.host.vault_netloc
        return f"https://{host}"

    def _bundle(self, request: Request, name: str, v: SecretVersion, with_value: bool = True) -> Reply:
        doc: dict[str, Any] = {"id": f"{self._base(request)}/secrets/{name}/{v.version}", "attributes": v.attributes()}
        if with_value:
            doc = {"value": v.value, **doc}
        if v.content_type is not None:
            doc["contentType"] = v.content_type
        if v.tags:
            doc["tags"] = dict(v.tags)
        return Reply(200, encode_json(doc), JSON_TYPE, {"x-ms-request-id": request_ids(request)["request-id"]})

    def _item(self, name: str, v: SecretVersion, with_version: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"id": f"/secrets/{name}" + (f"/{v.version}" if with_version else ""),
                                "attributes": v.attributes()}
        if v.content_type is not None:
            item["contentType"] = v.content_type
        if v.tags:
            item["tags"] = dict(v.tags)
        return item

    def _page(self, request: Request, path: str, items: list[dict[str, Any]]) -> Reply:
        raw = (request.query.get("maxresults") or [str(MAX_RESULTS)])[-1]
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_RESULTS:
            raise VaultError(400, "BadParameter", f"Invalid maxresults: '{raw}'. It must be between 1 and {MAX_RESULTS}.")
        token = (request.query.get("$skiptoken") or [""])[-1]
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"]) if token else 0
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise VaultError(400, "BadParameter", "The $skiptoken is not valid.") from None
        base = self._base(request)
        doc: dict[str, Any] = {"value": [{**i, "id": base + i["id"]} for i in items[offset:offset + size]],
                               "nextLink": None}
        if offset + size < len(items):
            skip = base64.urlsafe_b64encode(json.dumps({"o": offset + size}).encode()).decode().rstrip("=")
            api = (request.query.get("api-version") or [""])[-1]
            doc["nextLink"] = f"{base}{path}?api-version={api}&$skiptoken={skip}&maxresults={size}"
        return Reply(200, encode_json(doc), JSON_TYPE, {"x-ms-request-id": request_ids(request)["request-id"]})
