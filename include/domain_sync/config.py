"""Settings of the sync, read from the environment with defaults in one place.

Airflow connections carry the endpoints and secrets (tenant: conn type msgraph; domain: an LDAP
connection); everything else is a plain setting here, overridable by `DOMAIN_SYNC_<NAME>` variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from domain_sync.errors import PermanentError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MAPPING_FILE = PACKAGE_DIR / "mapping.yaml"


def _default_data_dir() -> str:
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return str(Path(airflow_home) / "domain_sync")


class SettingsError(PermanentError, ValueError):
    """Settings that contradict each other; the message names the variables to fix."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of a sync run. Field names map to env vars DOMAIN_SYNC_<FIELD_NAME_UPPER>."""

    tenant_conn_id: str = "msgraph_tenant"
    domain_conn_id: str = "ldap_domain"
    data_dir: str = field(default_factory=_default_data_dir)
    mapping_file: str = str(DEFAULT_MAPPING_FILE)
    # Container of synced users and groups, relative to the domain's base DN (Entra Domain
    # Services puts them all in "AADDC Users").
    container: str = "OU=AADDC Users"
    # Attribute that carries the tenant object id; present on users and groups in Windows Server
    # and Samba schemas (DESIGN.md section 7). mS-DS-ConsistencyGuid holds the id's 16 bytes.
    anchor_attribute: str = "mS-DS-ConsistencyGuid"
    graph_timeout_seconds: float = 60.0
    # Give up on a throttled or failing Graph read after this long; Airflow's retry takes over.
    graph_retry_budget_seconds: float = 300.0
    ldap_timeout_seconds: float = 30.0
    # Apply: give up on an unreachable domain after this long (ApplyAborted; Airflow's retry takes over).
    ldap_retry_budget_seconds: float = 120.0
    # Graph and LDAP: attempts of one request before the retry gives up (with the budgets above).
    retry_attempts: int = 10
    # Apply: LDAP connections writing in parallel (objects of one phase; phases stay in order).
    apply_connections: int = 4
    # Where synced objects are looked up by anchor, relative to the base DN ("" = the whole domain),
    # so that objects in a former container are found and moved. Must contain the container.
    search_base: str = ""
    # Deletion guard (Entra Connect's export deletion threshold is 500).
    max_deletes: int = 500
    # Share of all synced objects of a type a plan may delete or disable (0..1), on top of the count.
    max_delete_share: float = 0.5
    # Below this many synced objects of a type, the share limit does not apply.
    delete_share_min_objects: int = 20
    # Users get a random initial password at creation (never stored or logged) so that the
    # account is valid in Windows AD; "none" creates them without one.
    initial_password: str = "random"
    # Validation: more than this share of objects failing a row-level rule stops the run.
    max_quarantine_share: float = 0.05
    # Validation: a full read holding fewer than this share of the previous snapshot's users (or
    # groups) is a broken read, not a tenant change: the run stops (previous snapshots of at least
    # delete_share_min_objects objects).
    min_full_read_share: float = 0.8
    # Scope: empty = every user and group; else group ids or display names, comma-separated: their
    # members, nested groups followed (docs/mapping.md, "Scope").
    scope_groups: str = ""
    # Apply: more than this share of changes failing permanently fails the task (after writing
    # every other change and the results).
    max_apply_failure_share: float = 0.05

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"DOMAIN_SYNC_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls(), f.name) if f.default_factory is not None else f.default  # type: ignore[misc]
            try:
                values[f.name] = type(default)(raw)
            except ValueError as exc:
                raise SettingsError(
                    f"setting DOMAIN_SYNC_{f.name.upper()}={raw!r} is not a valid {type(default).__name__}"
                ) from exc
        return cls(**values)

    @property
    def runs_dir(self) -> Path:
        return Path(self.data_dir) / "runs"

    @property
    def state_dir(self) -> Path:
        return Path(self.data_dir) / "state"
