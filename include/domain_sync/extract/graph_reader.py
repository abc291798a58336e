"""Delta reads from Microsoft Graph through the provider's KiotaRequestAdapterHook.

Graph rules (MS, DESIGN.md section 4): follow @odata.nextLink until a page carries
@odata.deltaLink; an expired delta link answers 400 syncStateNotFound (or 410 Gone) and only a full
read recovers; throttling answers 429 with Retry-After. A saved delta link that Graph refuses as a bad
request (a garbled or truncated token, one of another query) is just as unusable: both are a
`SavedLinkUnusable`, from which the extract stage recovers with one full read. The hook's client
retries 429/503/504 three times, sleeping Retry-After, then raises with the error body only
(DESIGN.md section 5). This reader retries on top of that: it reads the status and Retry-After of the
hook's last response from the HTTP client, waits Retry-After when Graph gave one and backs off
exponentially otherwise, and gives up after `retry_budget_seconds` without progress
(TenantUnavailable) so that Airflow's task retry takes over. A page reaches `on_page` only once it
was received whole, so a retried request never writes a page twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from domain_sync.backoff import Backoff
from domain_sync.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
EXPIRED_CODES = ("syncStateNotFound", "resyncRequired")
AUTH_CODES = ("invalid_client", "unauthorized_client", "invalid_tenant", "invalid_request", "invalid_scope",
              "unsupported_grant_type")


class SavedLinkUnusable(PermanentError):
    """The saved delta link cannot be followed; only a full read recovers (extract does it at once)."""


class DeltaLinkExpired(SavedLinkUnusable):
    """Graph no longer knows the delta link (older than 7 days, a reset sync state, another endpoint)."""


class DeltaLinkRefused(SavedLinkUnusable):
    """Graph refused the request of the saved delta link as a client error: its token is garbled or
    truncated, or belongs to another query; following it again would fail the same way."""


class TenantAuthError(PermanentError):
    """The tenant refused the connection's client credentials; retrying cannot help."""


class TenantUnavailable(TransientError):
    """Graph kept failing (throttling, server errors, timeouts, dropped connections) past the retry budget."""


class GraphRequestRejected(PermanentError):
    """Graph answered a request with a client error other than an expired link or refused credentials."""

    def __init__(self, message: str, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status  # the HTTP status, when Graph answered one
        self.reason = reason  # Graph's error code and message


@dataclass
class DeltaRound:
    delta_link: str
    pages: int
    requests: int
    retries: int


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class ResponseWatch:
    """Remembers the status and Retry-After of the last response the hook's HTTP client received.

    Installed as an httpx response event hook; it sees the answer kiota's retry handler gave up on.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self.retry_after: float | None = None

    def reset(self) -> None:
        self.status = None
        self.retry_after = None

    async def __call__(self, response: Any) -> None:
        self.status = response.status_code
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))

    async def install(self, hook: Any) -> None:
        """Attach to the hook's current HTTP client (the hook rebuilds it after some errors)."""
        adapter = await hook.get_async_conn()
        client = getattr(adapter, "_http_client", None)
        hooks = getattr(client, "event_hooks", None)
        if isinstance(hooks, dict) and self not in hooks.setdefault("response", []):
            hooks["response"].append(self)


def _error_text(exc: BaseException) -> str:
    """The Graph error code and message of an exception raised by the hook, else its text (no headers, no secrets)."""
    body = exc.args[0] if exc.args else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('code', '')}: {error.get('message', '')}"[:300]
    return str(exc)[:300]


def classify(exc: BaseException, status: int | None, conn_id: str) -> BaseException | None:
    """The final error for an exception of the hook, or None when the request is worth retrying."""
    import httpx
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    text = _error_text(exc)
    name = type(exc).__name__
    if status == 410 or any(code in text for code in EXPIRED_CODES):
        return DeltaLinkExpired(f"tenant connection '{conn_id}': the delta link has expired ({text or 'Gone'})")
    if isinstance(exc, ClientAuthenticationError):
        code = exc.status_code or 0
        if code >= 500 or code in (408, 429) or "temporarily_unavailable" in text:
            return None
        return TenantAuthError(
            f"tenant connection '{conn_id}': the token endpoint refused the client credentials "
            f"({next((c for c in AUTH_CODES if c in text), name)}, HTTP {code or '?'}); check the connection's "
            f"login (client id), password (client secret) and extra tenant_id"
        )
    if isinstance(exc, PermissionError):
        return TenantAuthError(
            f"tenant connection '{conn_id}': Graph refused the request ({text}); check the application's "
            f"permissions (User.Read.All, GroupMember.Read.All) and the connection's tenant_id"
        )
    if isinstance(exc, (httpx.TransportError, ServiceRequestError, ServiceResponseError, asyncio.TimeoutError,
                        ConnectionError)):
        return None  # timeouts, dropped or refused connections, the token endpoint unreachable
    if name == "AirflowBadRequest":
        return GraphRequestRejected(f"tenant connection '{conn_id}': Graph rejected the request (400 {text})",
                                    400, text)
    if name == "AirflowNotFoundException":
        return GraphRequestRejected(f"tenant connection '{conn_id}': not found ({text})", 404, text)
    graph_body = bool(exc.args) and isinstance(exc.args[0], dict)
    if name == "AirflowException" and (status in TRANSIENT_STATUSES or (status is None and graph_body)):
        return None  # 429/5xx that kiota's own retries did not get past
    if name == "AirflowException":
        return GraphRequestRejected(f"tenant connection '{conn_id}': Graph answered HTTP {status} ({text})",
                                    status, text)
    return exc


async def read_delta(
    hook: Any,
    resource: str,
    select: list[str],
    delta_link: str | None,
    on_page: Callable[[list[dict]], None],
    conn_id: str,
    retry_budget_seconds: float = 300.0,
    sleep: Callable[[float], Any] = asyncio.sleep,
    retry_attempts: int = 10,
) -> DeltaRound:
    """Read one delta round; each page's objects go to `on_page` once, in order."""
    if delta_link:
        try:
            await hook.assert_allowed_host(delta_link)
        except ValueError:
            # Saved while the connection pointed elsewhere (another cloud, tenant endpoint or proxy):
            # it means nothing to this endpoint, and following it could send the token there.
            raise DeltaLinkExpired(f"tenant connection '{conn_id}': the saved delta link is for "
                                   f"{urlsplit(delta_link).netloc}, not this connection's endpoint") from None
        url, params = delta_link, None
    else:
        url, params = f"{resource}/delta", {"$select": ",".join(select)}
    reader = _RetryingReader(hook, conn_id, Backoff(retry_budget_seconds, retry_attempts), sleep)
    pages = 0
    while True:
        try:
            response = await reader.get(url, params)
        except GraphRequestRejected as exc:
            # A client error on the saved link's own request is about its token (garbled, truncated, of
            # another query); refused credentials and throttling were sorted out by classify(). A
            # rejection of a link Graph just gave, or of a full read, stays what it is.
            if delta_link and pages == 0 and exc.status is not None and 400 <= exc.status < 500:
                raise DeltaLinkRefused(f"tenant connection '{conn_id}': Graph refused the saved {resource} "
                                       f"delta link (HTTP {exc.status} {exc.reason})") from None
            raise
        pages += 1
        on_page(response.get("value") or [])
        next_link = response.get("@odata.nextLink")
        if next_link:
            await hook.assert_allowed_host(next_link)
            url, params = next_link, None
            continue
        link = response.get("@odata.deltaLink")
        if not link:
            raise GraphRequestRejected(
                f"tenant connection '{conn_id}': a {resource} delta page had neither next nor delta link")
        return DeltaRound(link, pages, reader.requests, reader.backoff.retries)


class _RetryingReader:
    def __init__(self, hook: Any, conn_id: str, backoff: Backoff, sleep: Callable[[float], Any]):
        self.hook = hook
        self.conn_id = conn_id
        self.backoff = backoff
        self.sleep = sleep
        self.watch = ResponseWatch()
        self.requests = 0

    async def get(self, url: str, params: dict | None) -> dict:
        """One page; the budget counts from the last page received, so only time without progress counts."""
        self.backoff.progress()
        unauthorized_retried = False
        while True:
            self.watch.reset()
            self.requests += 1
            try:
                await self.watch.install(self.hook)
                response = await self.hook.run(url=url, query_parameters=params)
                if not isinstance(response, dict):
                    raise GraphRequestRejected(
                        f"tenant connection '{self.conn_id}': unexpected answer of type {type(response).__name__}")
                return response
            except Exception as exc:  # noqa: BLE001 - sorted by classify()
                status, retry_after = self.watch.status, self.watch.retry_after
                final = classify(exc, status, self.conn_id)
                # A 401 from Graph may be a token that expired mid-round: the hook dropped its adapter, so
                # one more request gets a fresh token.
                if isinstance(final, TenantAuthError) and status == 401 and not unauthorized_retried:
                    unauthorized_retried, final = True, None
                if final is exc:
                    raise
                if final is not None:
                    raise final from None
                delay = self.backoff.next_delay(retry_after)
                what = f"{type(exc).__name__}{f' HTTP {status}' if status else ''}: {_error_text(exc)[:200]}"
                if delay is None:
                    asked = f"; Graph asked to wait {retry_after:.0f}s" if retry_after is not None else ""
                    raise TenantUnavailable(
                        f"tenant connection '{self.conn_id}': Graph still failing after {self.backoff.exhausted()}"
                        f"{asked}; last error {what}", delay=retry_after,
                    ) from None
                log.warning("Graph request failed (%s); retry %d in %.1fs%s", what, self.backoff.attempts, delay,
                            " (Retry-After)" if retry_after is not None else "")
                await self.sleep(delay)
