"""What every stage is given: `run(ctx) -> dict`, with ctx a `StageContext`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from domain_sync.config import Settings
from domain_sync.domain import DomainEndpoint
from domain_sync.runs import RunFolder


def _endpoint_from_airflow(settings: Settings) -> DomainEndpoint:
    from domain_sync.domain import endpoint_from_airflow

    return endpoint_from_airflow(settings.domain_conn_id)


def _tenant_id_from_airflow(settings: Settings) -> str:
    """The tenant id of the Graph connection (extra tenant_id), else the connection id."""
    try:
        from airflow.sdk import BaseHook

        extra = BaseHook.get_connection(settings.tenant_conn_id).extra_dejson
    except Exception:  # noqa: BLE001 - no Airflow connection: the marker names the connection id
        return settings.tenant_conn_id
    return str(extra.get("tenant_id") or settings.tenant_conn_id)


@dataclass
class StageContext:
    """The settings, the run's folder, the run's params, and the domain endpoint, looked up only when a
    stage asks for it (from the Airflow connection unless `endpoint_factory` says otherwise; a factory
    returning None means "no domain": transform then uses the built-in schema)."""

    settings: Settings
    run: RunFolder
    params: dict[str, Any] = field(default_factory=dict)
    endpoint_factory: Callable[[Settings], DomainEndpoint | None] = _endpoint_from_airflow
    tenant_id_factory: Callable[[Settings], str] = _tenant_id_from_airflow

    @cached_property
    def endpoint(self) -> DomainEndpoint | None:
        return self.endpoint_factory(self.settings)

    @cached_property
    def owner_marker(self) -> str:
        """The value in `settings.owner_attribute` that makes an anchored object this sync's own."""
        return self.settings.owner_marker or f"domain-sync:{self.tenant_id_factory(self.settings)}"

    def flag(self, name: str) -> bool:
        """A boolean param of the run (trigger form or backfill conf)."""
        return bool(self.params.get(name))

    @classmethod
    def offline(cls, settings: Settings, run_id: str, **params: Any) -> "StageContext":
        """A context without a domain (pure tests, previews)."""
        return cls(settings, RunFolder(settings.runs_dir, run_id), dict(params), endpoint_factory=lambda s: None)
