"""Settings of the sync, read from the environment with defaults in one place.

Airflow connections carry the endpoints and secrets (tenant: conn type msgraph; domain: an LDAP
connection); everything else is a plain setting here, overridable by `DOMAIN_SYNC_<NAME>` variables.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from domain_sync.errors import PermanentError
from domain_sync.storage import StoragePath, location

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MAPPING_FILE = PACKAGE_DIR / "mapping.yaml"


def _default_data_dir() -> str:
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return str(Path(airflow_home) / "domain_sync")


INITIAL_PASSWORD_MODES = ("random", "none")
# Where initial passwords go (sink) and where password changes come from (source): README, "Credentials".
CREDENTIAL_STORES = ("none", "keyvault", "dropfolder")
PLAN_MODES = ("incremental", "full")


class SettingsError(PermanentError, ValueError):
    """Settings that contradict each other; the message names the variables to fix."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of a sync run. Field names map to env vars DOMAIN_SYNC_<FIELD_NAME_UPPER>."""

    # Airflow connection of the tenant (conn type msgraph).
    tenant_conn_id: str = "msgraph_tenant"
    # Airflow connection of the domain (LDAP; README, "The domain connection's extras").
    domain_conn_id: str = "ldap_domain"
    # Folder of the run folders (runs/), the state (state/), alerts/ and alerting/: a local folder, or the URL of
    # a folder on object storage every worker reaches (abfs://container/folder, s3://bucket/folder, gs://...;
    # docs/design.md, "Where the state lives").
    data_dir: str = field(default_factory=_default_data_dir)
    # The Airflow connection of an object storage data_dir (empty: the file system's own credentials; unused for
    # a local folder).
    data_conn_id: str = ""
    # The attribute mapping file (docs/mapping.md).
    mapping_file: str = str(DEFAULT_MAPPING_FILE)
    # Container of synced users and groups, relative to the domain's base DN (Entra Domain
    # Services puts them all in "AADDC Users").
    container: str = "OU=AADDC Users"
    # Attribute that carries the tenant object id; present on users and groups in Windows Server
    # and Samba schemas (DESIGN.md section 7). mS-DS-ConsistencyGuid holds the id's 16 bytes.
    anchor_attribute: str = "mS-DS-ConsistencyGuid"
    # Timeout of one Graph request.
    graph_timeout_seconds: float = 60.0
    # Give up on a throttled or failing Graph read after this long; Airflow's retry takes over.
    graph_retry_budget_seconds: float = 300.0
    # Timeout of connecting to the domain and of one LDAP request.
    ldap_timeout_seconds: float = 30.0
    # Apply: give up on an unreachable domain after this long (ApplyAborted; Airflow's retry takes over).
    ldap_retry_budget_seconds: float = 120.0
    # Graph and LDAP: attempts of one request before the retry gives up (with the budgets above).
    retry_attempts: int = 10
    # LDAP result codes retried on a fresh connection (51 busy, 52 unavailable; add 80 for a DC that
    # answers "other" while it restarts), comma-separated.
    ldap_transient_codes: str = "51,52"
    # Apply: LDAP connections writing in parallel (objects of one phase; phases stay in order).
    apply_connections: int = 4
    # Apply in the DAGs: the most changes one mapped apply task writes (a batch; the batches of one phase run
    # in parallel, as many at once as DOMAIN_SYNC_APPLY_POOL has slots, each over DOMAIN_SYNC_APPLY_CONNECTIONS).
    apply_batch_size: int = 1000
    # Where synced objects are looked up by anchor, relative to the base DN ("" = the container itself);
    # a parent of the container lets objects moved out of it be found and moved back. Must contain the
    # container. Nothing outside it is ever modified, moved or deleted.
    search_base: str = ""
    # Ownership: an object is ours only when it carries the anchor and, in `owner_attribute`, the marker
    # "domain-sync:<tenant id>" (owner_marker overrides it). Entra Connect and Cloud Sync write
    # mS-DS-ConsistencyGuid on every object of a hybrid domain, so the anchor alone proves nothing.
    owner_attribute: str = "extensionName"
    # The ownership marker written to and looked for in owner_attribute; empty: "domain-sync:<tenant id>".
    owner_marker: str = ""
    # Deletion guard (Entra Connect's export deletion threshold is 500).
    max_deletes: int = 500
    # Share of all synced objects of a type a plan may delete or disable (0..1), on top of the count.
    max_delete_share: float = 0.5
    # Below this many synced objects of a type, the share limit does not apply.
    delete_share_min_objects: int = 20
    # Create guard: a plan creating more than this many objects (or more than max_create_share of the
    # tenant objects it writes, for at least create_share_min_objects of them) is blocked while the domain
    # shows that the sync may not see its own objects (objects with the anchor but not our marker, or
    # a committed state with nothing synced found): a changed anchor, owner or search base setting would
    # otherwise create a duplicate of every object.
    max_creates: int = 500
    # Create guard: the share (0..1) of the tenant objects a plan writes that it may create while the
    # domain shows that the sync may not see its own objects (see max_creates).
    max_create_share: float = 0.5
    # Create guard: below this many tenant objects written, the create share limit does not apply.
    create_share_min_objects: int = 20
    # Membership guard: memberships one plan may remove in all (members of objects the plan deletes
    # or disables count as those deletes, not again here).
    max_member_removals: int = 1000
    # Membership guard: the share (0..1) of a synced group's current members one plan may remove, per
    # group and over all synced groups together.
    max_member_removal_share: float = 0.5
    # Membership guard: the share limit applies to groups (and totals) of at least this many current members.
    member_removal_share_min_members: int = 20
    # State lock: a lock older than this (hours) is taken for abandoned and taken over by the next
    # run's extract, with a state_lock_recovered alert (docs/design.md, "Runs never overlap").
    state_lock_stale_hours: float = 12.0
    # Seconds an extract waits for the state lock another run holds (a drift check, a backfill) before
    # it fails with StateLocked (then retried by Airflow); 0: no wait.
    state_lock_wait_seconds: float = 300.0
    # Users get a random initial password at creation (never stored or logged) so that the
    # account is valid in Windows AD; "none" creates them without one, disabled.
    initial_password: str = "random"
    # The initial password is delivered to this store before the account is created (keyvault: a
    # secret per user with an expiry; dropfolder: an encrypted envelope per user); "none": nobody
    # learns it, a helpdesk resets it.
    credential_sink: str = "none"
    # Password changes (events: tenant object id, new password, time) are read from this store by the
    # credentials task after apply; "none": no password changes.
    credential_source: str = "none"
    # The Airflow connection of the credential sink (README, "Credentials").
    credential_sink_conn_id: str = "credential_sink"
    # The Airflow connection of the credential source (README, "Credentials").
    credential_source_conn_id: str = "credential_source"
    # Days an initial password stays valid in the sink (the Key Vault secret's expiry, the envelope's).
    initial_password_days: float = 7.0
    # Validation: more than this share of objects failing a row-level rule stops the run.
    max_quarantine_share: float = 0.05
    # Validation: a full read holding fewer than this share of the previous snapshot's users (or
    # groups) is a broken read, not a tenant change: the run stops (previous snapshots of at least
    # delete_share_min_objects objects).
    min_full_read_share: float = 0.8
    # Scope: empty = every user and group; else group ids or display names, comma-separated: their
    # members, nested groups followed (docs/mapping.md, "Scope").
    scope_groups: str = ""
    # Apply: more failing objects than this share of the synced objects (found by the plan, plus its
    # creates) fails the task after writing every other change and the results, and commit refuses the run.
    max_apply_failure_share: float = 0.05
    # Plan: "incremental" makes the records of a delta round's objects only (the others are the committed
    # ones), checks those, and plans for the objects that changed in the tenant or in the domain since the last
    # commit (docs/design.md, "Incremental plan"), falling back to a full reconcile when it cannot (a full
    # resync, a full read, no committed domain index or records, changed settings); "full" makes and checks
    # every record and reconciles the whole tenant against the whole domain every run.
    plan_mode: str = "incremental"
    # Run folders (<data_dir>/runs) kept: every run that wrote to the domain and the newest keep_runs of those
    # that did not, none older than keep_run_days; the others are removed at the end of the report stage
    # (never the current run). Both at least 1.
    keep_runs: int = 50
    # Days a run folder is kept at most (see keep_runs).
    keep_run_days: int = 30

    def __post_init__(self) -> None:
        """Range checks: a bad value is a settings error naming the variable, never a retried ValueError."""
        for f in fields(self):
            value = getattr(self, f.name)
            name = f"DOMAIN_SYNC_{f.name.upper()}"
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"setting {name}={value} is not a finite number")
            if f.name.endswith("_share") and not 0 <= value <= 1:
                raise SettingsError(f"setting {name}={value} is a share: it must be between 0 and 1")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise SettingsError(f"setting {name}={value} must not be negative")
        for name in ("graph_timeout_seconds", "ldap_timeout_seconds", "retry_attempts", "apply_connections",
                     "apply_batch_size", "initial_password_days"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"setting DOMAIN_SYNC_{name.upper()}={getattr(self, name)} must be above 0")
        for name in ("keep_runs", "keep_run_days"):
            if getattr(self, name) < 1:
                raise SettingsError(f"setting DOMAIN_SYNC_{name.upper()}={getattr(self, name)} must be at least 1")
        if self.initial_password not in INITIAL_PASSWORD_MODES:
            raise SettingsError(f"setting DOMAIN_SYNC_INITIAL_PASSWORD={self.initial_password!r} is not one of "
                                f"{', '.join(INITIAL_PASSWORD_MODES)}")
        if self.plan_mode not in PLAN_MODES:
            raise SettingsError(f"setting DOMAIN_SYNC_PLAN_MODE={self.plan_mode!r} is not one of {', '.join(PLAN_MODES)}")
        for name in ("credential_sink", "credential_source"):
            if getattr(self, name) not in CREDENTIAL_STORES:
                raise SettingsError(f"setting DOMAIN_SYNC_{name.upper()}={getattr(self, name)!r} is not one of "
                                    f"{', '.join(CREDENTIAL_STORES)}")
        if self.credential_sink != "none" and self.initial_password != "random":
            raise SettingsError(f"setting DOMAIN_SYNC_CREDENTIAL_SINK={self.credential_sink!r} delivers initial "
                                f"passwords, but DOMAIN_SYNC_INITIAL_PASSWORD={self.initial_password!r} sets none")
        if not self.owner_attribute.strip():
            raise SettingsError("setting DOMAIN_SYNC_OWNER_ATTRIBUTE is empty: objects would be written with an "
                                "attribute without a name and ownership would rest on the anchor alone")
        if self.owner_attribute.strip().lower() == self.anchor_attribute.strip().lower():
            raise SettingsError(f"setting DOMAIN_SYNC_OWNER_ATTRIBUTE={self.owner_attribute!r} is the anchor attribute "
                                f"(DOMAIN_SYNC_ANCHOR_ATTRIBUTE): the ownership marker needs an attribute of its own")
        self.transient_ldap_codes()

    def transient_ldap_codes(self) -> frozenset[int]:
        try:
            codes = frozenset(int(c) for c in self.ldap_transient_codes.split(",") if c.strip())
        except ValueError:
            raise SettingsError(f"setting DOMAIN_SYNC_LDAP_TRANSIENT_CODES={self.ldap_transient_codes!r} is not a "
                                f"comma-separated list of LDAP result codes") from None
        if any(not 0 < c < 128 for c in codes):
            raise SettingsError(f"setting DOMAIN_SYNC_LDAP_TRANSIENT_CODES={self.ldap_transient_codes!r} names a code "
                                f"outside 1..127")
        return codes

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
    def data_root(self) -> StoragePath:
        """The data folder: a Path, or an ObjectStoragePath with the data_conn_id connection."""
        return location(self.data_dir, self.data_conn_id)

    @property
    def runs_dir(self) -> StoragePath:
        return self.data_root / "runs"

    @property
    def state_dir(self) -> StoragePath:
        return self.data_root / "state"
