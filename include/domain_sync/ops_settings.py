"""Settings of operating the sync in Airflow: schedules, alert delivery, freshness.

Read like `config.Settings` from `DOMAIN_SYNC_<NAME>` variables, with the defaults here. Kept apart
from the sync's own settings because the DAG files read the schedules when Airflow parses them:
a bad value of a sync setting must not take every DAG out of the UI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from domain_sync.config import Settings, SettingsError

log = logging.getLogger(__name__)

ALERT_CHANNELS = ("smtp", "webhook")


@dataclass(frozen=True)
class OpsSettings:
    # Schedule of the incremental sync (cron, or an Airflow preset such as "@daily"; every schedule is
    # read when the DAGs are parsed).
    sync_schedule: str = "*/5 * * * *"
    # Schedule of the full resync. Airflow backfills only DAGs with a periodic schedule: the full resync
    # runs weekly besides its manual runs and backfills.
    full_resync_schedule: str = "0 3 * * 0"
    # Schedule of the drift check (reads tenant and domain, writes nothing).
    drift_schedule: str = "0 6 * * *"
    # "true": the drift check also runs after every run of a sync that wrote the domain (its asset event).
    drift_on_sync_events: str = "false"
    # Schedule of the watchdog (freshness of the sync).
    watchdog_schedule: str = "*/5 * * * *"
    # Where alerts go besides the task log and <data dir>/alerts/, comma-separated: "smtp" (mail through
    # the Airflow SMTP connection alert_smtp_conn_id to alert_email_to) and "webhook" (a JSON POST, Teams- and
    # Slack-style {"text": ...}, to the URL of the Airflow connection alert_webhook_conn_id); "" for neither.
    alert_channels: str = "smtp"
    # Recipients, comma-separated; without one no mail is sent (and the log says so once per alert).
    alert_email_to: str = ""
    # Sender; empty: the SMTP connection's from_email extra.
    alert_email_from: str = ""
    # The Airflow SMTP connection alert mails go through.
    alert_smtp_conn_id: str = "smtp_default"
    # The Airflow connection alert webhooks are posted to: its host when that is a whole URL, else
    # schema://host[:port] plus its `endpoint` extra (a path).
    alert_webhook_conn_id: str = "alert_webhook"
    # Freshness: the watchdog alerts when the incremental sync has not succeeded for this many minutes
    # (failed, hung or not scheduled at all), and whenever the sync DAG is paused.
    freshness_minutes: float = 30.0
    # An object whose change fails in this many runs in a row is quarantined (domain_sync.failing) with an
    # object_failing alert.
    object_failure_runs: int = 3
    # Alerts not delivered (still logged and written to <data dir>/alerts/), comma-separated: an alert kind
    # ("sync_stale"), a kind until a time ("sync_stale@2026-12-07T06:00Z"), or "*" for every kind
    # ("*@2026-12-07T06:00Z": a maintenance window). A silence whose time has passed is over.
    alert_silence: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.channels()) - set(ALERT_CHANNELS))
        if unknown:
            raise SettingsError(f"setting DOMAIN_SYNC_ALERT_CHANNELS={self.alert_channels!r} names {unknown}; "
                                f"expected any of {', '.join(ALERT_CHANNELS)}")
        if self.freshness_minutes <= 0:
            raise SettingsError(f"setting DOMAIN_SYNC_FRESHNESS_MINUTES={self.freshness_minutes} must be above 0")
        if self.object_failure_runs < 1:
            raise SettingsError(f"setting DOMAIN_SYNC_OBJECT_FAILURE_RUNS={self.object_failure_runs} must be at "
                                f"least 1")
        if self.drift_on_sync_events.lower() not in ("true", "false"):
            raise SettingsError(f"setting DOMAIN_SYNC_DRIFT_ON_SYNC_EVENTS={self.drift_on_sync_events!r} is not "
                                f"true or false")


    def silences(self) -> dict[str, datetime | None]:
        """{kind or "*": until (None: until the setting is changed)}."""
        found: dict[str, datetime | None] = {}
        for entry in (e.strip() for e in self.alert_silence.split(",")):
            if not entry:
                continue
            kind, _, until = entry.partition("@")
            kind = kind.strip()
            if not kind or not (kind == "*" or kind.replace("_", "").isalnum()):
                raise SettingsError(f"setting DOMAIN_SYNC_ALERT_SILENCE={self.alert_silence!r}: {entry!r} does not "
                                    f"name an alert kind (e.g. sync_stale, or * for every kind)")
            when = None
            if until.strip():
                try:
                    when = datetime.fromisoformat(until.strip().replace("Z", "+00:00"))
                except ValueError:
                    raise SettingsError(f"setting DOMAIN_SYNC_ALERT_SILENCE={self.alert_silence!r}: {until!r} is not "
                                        f"an ISO time (e.g. 2026-12-07T06:00Z)") from None
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
            found[kind] = when
        return found

    def silenced_until(self, kind: str, now: datetime | None = None) -> str | None:
        """Why an alert of `kind` is not delivered now ("until <time>" or "until the setting changes"), or None.
        A silence that does not parse silences nothing (an error is logged): alerts fail open, and a typo in
        a maintenance window never takes the DAGs (which read these settings when parsed) out of the UI."""
        now = now or datetime.now(UTC)
        try:
            silences = self.silences()
        except SettingsError as exc:
            log.error("%s; every alert is delivered until it is corrected", exc)
            return None
        for key in (kind, "*"):
            if key in silences:
                until = silences[key]
                if until is None:
                    return "until DOMAIN_SYNC_ALERT_SILENCE changes"
                if now < until:
                    return f"until {until.isoformat()}"
        return None

    def channels(self) -> list[str]:
        return [c.strip().lower() for c in self.alert_channels.split(",") if c.strip()]

    def recipients(self) -> list[str]:
        return [r.strip() for r in self.alert_email_to.split(",") if r.strip()]

    @property
    def drift_follows_sync(self) -> bool:
        return self.drift_on_sync_events.lower() == "true"

    # The same reading of DOMAIN_SYNC_<NAME> variables as the sync's settings (a bad value names its variable).
    from_env = classmethod(Settings.from_env.__func__)
