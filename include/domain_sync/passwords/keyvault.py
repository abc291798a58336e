"""Azure Key Vault as a credential sink and source, through azure-keyvault-secrets' SecretClient.

- Sink: the initial password of a user is the secret `initial-password-<tenant object id>` (content type
  `password`, tags objectId, userPrincipalName, sAMAccountName, createdAt), expiring after
  `initial_password_days`; a re-created account gets a new version.
- Source: password changes are the versions of the secrets `password-change-<tenant object id>`: each
  version is one event (the new password is its value; its time is the tag `changedAt`, ISO 8601 with a
  zone, else the version's creation time). A consumed version is tagged `domain-sync` = its outcome (and
  `domain-sync-at`) and disabled, so its password cannot be read again.

The Airflow connection (conn type `azure_key_vault`, README "Credentials"): host = the vault URL
(https://NAME.vault.azure.net), login = client id, password = client secret, extra tenant_id, and
optionally authority (another cloud's login host, or the emulator's), ca_file (a private CA),
verify_challenge_resource (false only where the vault is not reached by a *.vault.azure.net name).
The client's first request goes without a token; the vault answers 401 with its challenge
(`WWW-Authenticate: Bearer authorization="<login host>/<tenant>", resource="https://vault.azure.net"`)
and the client asks the credential for a token for that resource.
"""

from __future__ import annotations

from typing import Any

from domain_sync.naming import is_object_id
from domain_sync.passwords.stores import (
    REJECTED,
    InitialPassword,
    PasswordChange,
    SetAside,
    StoreRefused,
    StoreUnavailable,
    now,
    parse_time,
)

CHANGE_PREFIX = "password-change-"
INITIAL_PREFIX = "initial-password-"
MARK = "domain-sync"
FALSE = ("false", "0", "no")


def _translate(exc: Exception, what: str) -> Exception:
    """The store error for an Azure SDK error: refused credentials and requests are permanent, the rest
    (network, throttling, 5xx) transient. The SDK's messages carry the service's text, never a value."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    status = getattr(exc, "status_code", None)
    message = f"Key Vault {what}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    if isinstance(exc, ClientAuthenticationError) or (isinstance(exc, HttpResponseError) and status in (400, 401, 403)):
        return StoreRefused(message)
    return StoreUnavailable(message)


class KeyVaultStore:
    name = "keyvault"

    def __init__(self, client: Any):
        self.client = client
        self._tags: dict[str, dict[str, str]] = {}

    @classmethod
    def from_connection(cls, conn: Any, conn_id: str = "credential_store") -> KeyVaultStore:
        from azure.identity import ClientSecretCredential
        from azure.keyvault.secrets import SecretClient

        extra = getattr(conn, "extra_dejson", None) or {}
        vault_url = str(getattr(conn, "host", None) or extra.get("vault_url") or "")
        if not vault_url.startswith("https://"):
            raise StoreRefused(f"connection {conn_id!r}: host must be the vault's https:// URL")
        tenant_id = extra.get("tenant_id") or extra.get("tenantId")
        if not (tenant_id and getattr(conn, "login", None) and getattr(conn, "password", None)):
            raise StoreRefused(f"connection {conn_id!r}: needs login (client id), password (client secret) and "
                               f"extra tenant_id")
        verify: Any = extra.get("ca_file") or True
        options: dict[str, Any] = {"connection_verify": verify}
        credential_options = dict(options)
        if extra.get("authority"):
            credential_options.update(authority=extra["authority"], disable_instance_discovery=True)
        credential = ClientSecretCredential(tenant_id, conn.login, conn.password, **credential_options)
        check = str(extra.get("verify_challenge_resource", True)).strip().lower() not in FALSE
        client = SecretClient(vault_url, credential, verify_challenge_resource=check, retry_total=3, **options)
        return cls(client)

    # -- sink -----------------------------------------------------------------------------------------
    def deliver_initial(self, item: InitialPassword) -> None:
        tags = {"objectId": item.object_id, "userPrincipalName": item.user_principal_name or "",
                "sAMAccountName": item.account_name or "", "createdAt": item.created_at.isoformat()}
        try:
            self.client.set_secret(f"{INITIAL_PREFIX}{item.object_id}", item.password, content_type="password",
                                   expires_on=item.expires_at, tags=tags)
        except Exception as exc:  # noqa: BLE001 - every SDK error becomes a store error
            raise _translate(exc, f"storing the initial password of {item.object_id}") from None

    def read_initial(self, object_id: str) -> dict | None:
        """The user's initial password and its tags (for the helpdesk's command); None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            secret = self.client.get_secret(f"{INITIAL_PREFIX}{object_id}")
        except ResourceNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, f"reading the initial password of {object_id}") from None
        return {**(secret.properties.tags or {}), "password": secret.value,
                "expires_at": secret.properties.expires_on.isoformat() if secret.properties.expires_on else None}

    # -- source ---------------------------------------------------------------------------------------
    def drop_change(self, object_id: str, password: str, changed_at, event_id: str | None = None) -> str:
        """Add a password change (a new version of the user's change secret): what a producer does."""
        try:
            secret = self.client.set_secret(f"{CHANGE_PREFIX}{object_id}", password, content_type="password",
                                            tags={"changedAt": changed_at.isoformat()})
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, f"adding a password change for {object_id}") from None
        return f"{secret.name}/{secret.properties.version}"

    def pending(self) -> tuple[list[PasswordChange], list[SetAside]]:
        events: list[PasswordChange] = []
        set_aside: list[SetAside] = []
        try:
            names = [p.name for p in self.client.list_properties_of_secrets() if p.name.startswith(CHANGE_PREFIX)]
            for name in sorted(names):
                for version in self.client.list_properties_of_secret_versions(name):
                    tags = dict(version.tags or {})
                    if not version.enabled or MARK in tags:
                        continue  # consumed (or disabled by an admin)
                    origin = f"{name}/{version.version}"
                    self._tags[origin] = tags
                    object_id = name[len(CHANGE_PREFIX):]
                    changed_at = parse_time(tags["changedAt"]) if "changedAt" in tags else version.created_on
                    reason = None
                    if not is_object_id(object_id):
                        reason = f"{name!r} does not end in a tenant object id"
                    elif changed_at is None:
                        reason = "tag changedAt is not an ISO 8601 time with a zone"
                    else:
                        value = self.client.get_secret(name, version.version).value
                        if value:
                            events.append(PasswordChange(object_id, value, changed_at, f"keyvault:{origin}", origin))
                        else:
                            reason = "the version has no value"
                    if reason:
                        self._mark(origin, REJECTED)
                        set_aside.append(SetAside(origin, reason))
        except (StoreRefused, StoreUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, "reading password changes") from None
        return events, set_aside

    def mark(self, event: PasswordChange, outcome: str) -> None:
        self._mark(event.origin, outcome)

    def _mark(self, origin: str, outcome: str) -> None:
        name, version = origin.split("/", 1)
        tags = {**self._tags.get(origin, {}), MARK: outcome, f"{MARK}-at": now().isoformat()}
        try:
            self.client.update_secret_properties(name, version, tags=tags, enabled=False)
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, f"marking {origin} {outcome}") from None

