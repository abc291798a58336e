"""Delivery of alerts to people: mail through Airflow's SMTP provider, and a chat webhook.

Every alert (`alerts.raise_alert`: a failed task, a blocked plan, new quarantined objects, a stale
sync, ...) comes here after it is logged and written to <data dir>/alerts/. The channels are chosen by
`DOMAIN_SYNC_ALERT_CHANNELS` (ops_settings.py): "smtp" sends a mail with the provider's
`SmtpNotifier` over the Airflow SMTP connection `DOMAIN_SYNC_ALERT_SMTP_CONN_ID`; "webhook" POSTs
`{"text": ..., "alert": {...}}` (the shape Teams and Slack incoming webhooks take) to the URL of the
Airflow connection `DOMAIN_SYNC_ALERT_WEBHOOK_CONN_ID`. A channel that fails is logged and reported in
the result; it never fails the task that raised the alert.
"""

from __future__ import annotations

import html
import json
import logging
import urllib.request
from typing import Any

from domain_sync.ops_settings import OpsSettings

log = logging.getLogger(__name__)

# Fields shown first, in this order, in a mail and a chat message.
LEAD_FIELDS = ("dag_id", "task_id", "run_id", "try_number", "error", "counts", "log_url")


def subject(alert: dict[str, Any]) -> str:
    where = ".".join(str(alert[k]) for k in ("dag_id", "task_id") if alert.get(k))
    first_line = str(alert.get("message", "")).splitlines()[0] if alert.get("message") else ""
    return f"[domain-sync] {alert.get('kind')}{f' {where}' if where else ''}: {first_line}"[:200]


def detail_lines(alert: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, text) of an alert's details, the lead fields first; the message and time are not repeated."""
    rest = sorted(k for k in alert if k not in (*LEAD_FIELDS, "message", "kind", "at"))
    lines = []
    for key in (*LEAD_FIELDS, *rest):
        if alert.get(key) in (None, "", [], {}):
            continue
        value = alert[key]
        lines.append((key, value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)))
    return lines


def plain_text(alert: dict[str, Any]) -> str:
    lines = [f"{alert.get('kind')}: {alert.get('message')}", *(f"{k}: {v}" for k, v in detail_lines(alert))]
    return "\n".join(lines + [f"at: {alert.get('at')}"])


def html_body(alert: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{_html_value(k, v)}</td></tr>"
                   for k, v in detail_lines(alert))
    return (f"<p><b>{html.escape(str(alert.get('kind')))}</b>: {html.escape(str(alert.get('message')))}</p>"
            f"<table>{rows}</table><p>at {html.escape(str(alert.get('at')))}</p>")


def _html_value(key: str, value: str) -> str:
    if key == "log_url" and value.startswith(("http://", "https://")):
        return f"<a href='{html.escape(value, quote=True)}'>{html.escape(value)}</a>"
    return html.escape(value)


def send_mail(ops: OpsSettings, alert: dict[str, Any]) -> str:
    recipients = ops.recipients()
    if not recipients:
        return "skipped: no recipient (DOMAIN_SYNC_ALERT_EMAIL_TO)"
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    # The content is final: notify() renders only fields left None, so nothing in an alert is templated.
    notifier = SmtpNotifier(to=recipients, from_email=ops.alert_email_from or None, subject=subject(alert),
                            html_content=html_body(alert), smtp_conn_id=ops.alert_smtp_conn_id)
    notifier.notify({})
    return "sent"


def webhook_url(conn) -> str:
    """The URL of a webhook connection: its host when that is a whole URL, else schema://host[:port] plus the
    `endpoint` extra (a path)."""
    host = conn.host or ""
    if "://" in host:
        base = host
    else:
        base = f"{conn.schema or 'https'}://{host}{f':{conn.port}' if conn.port else ''}"
    return base + str((conn.extra_dejson or {}).get("endpoint") or "")


def post_webhook(ops: OpsSettings, alert: dict[str, Any], timeout: float = 10) -> str:
    from airflow.sdk import BaseHook

    url = webhook_url(BaseHook.get_connection(ops.alert_webhook_conn_id))
    body = json.dumps({"text": plain_text(alert), "alert": alert}, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a configured https URL
        return f"sent (HTTP {response.status})"


SENDERS = {"smtp": send_mail, "webhook": post_webhook}


def deliver(alert: dict[str, Any], ops: OpsSettings | None = None) -> dict[str, str]:
    """Send the alert on every configured channel; {channel: outcome}. Never raises."""
    try:
        ops = ops or OpsSettings.from_env()
    except Exception as exc:  # noqa: BLE001 - a bad alert setting must not hide the alert itself
        log.error("alert %s not delivered: %s", alert.get("kind"), exc)
        return {"settings": f"failed: {exc}"}
    outcomes = {}
    silenced = ops.silenced_until(str(alert.get("kind")))
    if silenced:  # logged and in <data dir>/alerts/ already; not sent to people
        log.info("alert %s silenced %s (DOMAIN_SYNC_ALERT_SILENCE): not delivered", alert.get("kind"), silenced)
        return {"silenced": silenced}
    for channel in ops.channels():
        try:
            outcomes[channel] = SENDERS[channel](ops, alert)
        except Exception as exc:  # noqa: BLE001 - a mail server or webhook away: logged, never the task's failure
            outcomes[channel] = f"failed: {type(exc).__name__}: {exc}"
        level = logging.ERROR if outcomes[channel].startswith("failed") else logging.INFO
        log.log(level, "alert %s via %s: %s", alert.get("kind"), channel, outcomes[channel])
    return outcomes
