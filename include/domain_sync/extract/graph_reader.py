"""Delta reads from Microsoft Graph through the provider's KiotaRequestAdapterHook.

Graph rules (MS, DESIGN.md section 4): follow @odata.nextLink until a page carries
@odata.deltaLink; an expired delta link answers 400 syncStateNotFound (or 410) and only a full
read recovers. The hook's client retries 429/503/504 three times; beyond that this reader backs
off exponentially within a time budget, then fails so that Airflow's task retry takes over.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class DeltaLinkExpired(RuntimeError):
    pass


class TenantAuthError(RuntimeError):
    """The tenant refused the connection's client credentials; retrying cannot help."""


class TenantUnavailable(RuntimeError):
    """Graph kept failing (throttling, server errors, timeouts) past the retry budget."""


def _error_code(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    for code in ("syncStateNotFound", "resyncRequired", "InvalidAuthenticationToken", "invalid_client",
                 "unauthorized_client", "TooManyRequests", "ServiceUnavailable", "GatewayTimeout"):
        if code in text:
            return code
    return ""


def _classify(exc: BaseException, conn_id: str) -> BaseException | None:
    """Map an exception to a final error, or None when it is worth retrying."""
    try:
        from azure.core.exceptions import ClientAuthenticationError
    except ImportError:  # pragma: no cover
        ClientAuthenticationError = ()  # type: ignore[assignment]
    code = _error_code(exc)
    name = type(exc).__name__
    if code in ("syncStateNotFound", "resyncRequired") or "410" in str(exc)[:20]:
        return DeltaLinkExpired(f"delta link expired on connection '{conn_id}' ({code or 'Gone'})")
    if isinstance(exc, ClientAuthenticationError) or code in ("invalid_client", "unauthorized_client"):
        return TenantAuthError(
            f"tenant connection '{conn_id}': the token endpoint refused the client id/secret "
            f"({code or name}); check the connection's login and password"
        )
    if isinstance(exc, PermissionError):
        return TenantAuthError(f"tenant connection '{conn_id}': Graph refused the request ({code or 'forbidden'}); "
                               f"check the application's permissions (User.Read.All, GroupMember.Read.All)")
    if name == "AirflowBadRequest":
        return RuntimeError(f"tenant connection '{conn_id}': Graph rejected the request: {str(exc)[:500]}")
    if name == "AirflowNotFoundException":
        return RuntimeError(f"tenant connection '{conn_id}': not found: {str(exc)[:500]}")
    return None


async def read_delta(
    hook: Any,
    resource: str,
    select: list[str],
    delta_link: str | None,
    on_page: Callable[[list[dict]], None],
    conn_id: str,
    retry_budget_seconds: float = 300.0,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> tuple[str, int]:
    """Read one delta round; pages go to `on_page`. Returns (new delta link, pages read)."""
    if delta_link:
        url, params = delta_link, None
    else:
        url, params = f"{resource}/delta", {"$select": ",".join(select)}
    pages = 0
    while True:
        response = await _run_with_retry(hook, url, params, conn_id, retry_budget_seconds, sleep)
        pages += 1
        on_page(response.get("value") or [])
        next_link = response.get("@odata.nextLink")
        if next_link:
            await hook.assert_allowed_host(next_link)
            url, params = next_link, None
            continue
        link = response.get("@odata.deltaLink")
        if not link:
            raise RuntimeError(f"tenant connection '{conn_id}': a {resource} delta page had neither next nor delta link")
        return link, pages


async def _run_with_retry(hook, url, params, conn_id, budget, sleep) -> dict:
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            response = await hook.run(url=url, query_parameters=params)
            if not isinstance(response, dict):
                raise RuntimeError(f"tenant connection '{conn_id}': unexpected answer of type {type(response).__name__}")
            return response
        except Exception as exc:  # noqa: BLE001 - classified below
            final = _classify(exc, conn_id)
            if final is not None:
                raise final from None
            attempt += 1
            delay = min(60.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            if time.monotonic() + delay > deadline:
                raise TenantUnavailable(
                    f"tenant connection '{conn_id}': Graph still failing after {attempt} attempts "
                    f"in {budget:.0f}s ({type(exc).__name__}: {str(exc)[:200]})"
                ) from None
            log.warning("Graph request failed (%s: %s); retry %d in %.1fs", type(exc).__name__,
                        str(exc)[:200], attempt, delay)
            await sleep(delay)
