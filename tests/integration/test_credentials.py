"""Synced users sign in to the real Samba DC: with the initial password the sync delivered (and must change
it), with a password change from the credential source (the old one stops working), not while the
tenant has them disabled; and no password ever shows in a log line, a stage result, a run or state file
or an alert. Logins are real: an LDAPS simple bind with the UPN, and Kerberos with kinit (Debian's
krb5-user) against the domain's krb5.conf, whose realm names the DC's address as kdc."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from domain_sync.apply.writer import DomainWriter
from domain_sync.passwords.dropfolder import DropFolderStore
from domain_sync.passwords.policy import InsecureConnection
from domain_sync.records import Change, Op
from tests.fixtures.credentials import key_vault, kinit, ldap_login, use_key_vault
from tests.fixtures.sync_env import by_sam, first, tenant_user

pytestmark = pytest.mark.integration

MUST_CHANGE = "data 773"  # AD's bind diagnostic: the password must be changed (ERROR_PASSWORD_MUST_CHANGE)
WRONG = "data 52e"  # ERROR_LOGON_FAILURE: unknown user or bad password
DISABLED = "data 533"  # ERROR_ACCOUNT_DISABLED


def pwd_last_set(env, sam: str) -> str:
    return first(by_sam(env.synced_entries(["sAMAccountName", "pwdLastSet"]))[sam][1]["pwdlastset"])


# ---------------------------------------------------------------- stores

def use_drop_folder(env, path: Path) -> DropFolderStore:
    key = Fernet.generate_key().decode()
    env.monkeypatch.setenv("AIRFLOW_CONN_DROP", json.dumps({"conn_type": "fs", "password": key,
                                                            "extra": {"path": str(path)}}))
    env.set(credential_sink="dropfolder", credential_sink_conn_id="drop", credential_source="dropfolder",
            credential_source_conn_id="drop")
    return DropFolderStore(path, [key])


def past_the_second_of(stamp: str) -> None:
    """Wait until the clock is past the whole second of a Graph time (`2027-01-15T08:01:00Z`). Graph's
    lastPasswordChangeDateTime has whole seconds, and a domain password set within that second counts as
    older than the tenant's (changeset.must_change_now): a person's change that should count as newer
    comes in a later second. The emulator and the DC run on this machine's clock."""
    end = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=1)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))


def new_password() -> str:
    """A password the domain takes: four character classes, no part of any test user's name."""
    import secrets

    return f"Np-{secrets.randbelow(10**12):012d}-Qx!"


# ---------------------------------------------------------------- the secret scan

class Watch:
    """Everything the test's runs produced that a password must never appear in."""

    def __init__(self, env, caplog):
        self.env, self.caplog, self.results, self.passwords = env, caplog, [], set()

    def run(self, **params):
        result = self.env.run(**params)
        self.results.append(result)
        return result

    def assert_no_password_anywhere(self):
        import pandas as pd

        settings = self.env.settings
        texts = {"log": "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in self.caplog.records),
                 "stage results (XCom)": json.dumps(self.results, default=str)}
        data = Path(settings.data_dir)
        for path in [p for p in data.rglob("*") if p.is_file()]:
            raw = path.read_bytes()
            texts[str(path.relative_to(data))] = raw.decode("latin-1")
            if path.suffix == ".parquet":  # compressed columns: read them back
                texts[f"{path} (read)"] = pd.read_parquet(path).to_json()
        assert len(self.passwords) >= 1
        for password in self.passwords:
            for where, text in texts.items():
                for form in (password, password.encode("utf-16-le").decode("latin-1")):
                    assert form not in text, f"a password is in {where}"


@pytest.fixture
def watch(sync_env, caplog):
    caplog.set_level(logging.DEBUG)
    return Watch(sync_env, caplog)


def signed_up(env, watch, nick: str, display: str):
    """A synced user whose password came through the Key Vault source and works: (user, emulator, password)."""
    user = tenant_user(nick, display)
    emu = env.start_tenant({"users": [user]})
    use_key_vault(env, emu)
    watch.run()
    vault = key_vault(emu)
    password = new_password()
    watch.passwords |= {password, vault.read_initial(user["id"])["password"]}
    vault.drop_change(user["id"], password, datetime.now(UTC))
    watch.run()
    assert ldap_login(env.domain, f"{nick}@contoso.example", password)[0]
    return user, emu, password


# ---------------------------------------------------------------- tests

def test_a_synced_user_signs_in_with_its_initial_password_and_must_change_it(sync_env, watch, tmp_path):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ana = tenant_user("ana", "Ana Lima", passwordProfile={"forceChangePasswordNextSignIn": True},
                      lastPasswordChangeDateTime=yesterday)
    emu = sync_env.start_tenant({"users": [ana]})
    use_key_vault(sync_env, emu)
    watch.run()
    initial = key_vault(emu).read_initial(ana["id"])
    password = initial["password"]
    watch.passwords.add(password)
    assert initial["userPrincipalName"] == "ana@contoso.example" and initial["sAMAccountName"] == "ana"
    expires = datetime.fromisoformat(initial["expires_at"])
    assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert pwd_last_set(sync_env, "ana") == "0"

    bound, message = ldap_login(sync_env.domain, "ana@contoso.example", password)
    assert not bound and MUST_CHANGE in message, message
    assert WRONG in ldap_login(sync_env.domain, "ana@contoso.example", password + "x")[1]
    code, output = kinit(sync_env.domain, tmp_path, "ana", password)
    assert code != 0 and "Password expired" in output and "You must change it now" in output, output
    assert "Password incorrect" in kinit(sync_env.domain, tmp_path, "ana", password + "x")[1]

    # The person changes it at the first logon (kinit asks; kpasswd sets it) and signs in with theirs.
    chosen = new_password()
    watch.passwords.add(chosen)
    code, output = kinit(sync_env.domain, tmp_path, "ana", password, chosen, chosen)
    assert code == 0, output
    assert ldap_login(sync_env.domain, "ana@contoso.example", chosen)[0]
    # The tenant still says "must change at next sign-in": the domain's newer password is left alone.
    changed_at = pwd_last_set(sync_env, "ana")
    watch.run()
    assert pwd_last_set(sync_env, "ana") == changed_at != "0"
    assert ldap_login(sync_env.domain, "ana@contoso.example", chosen)[0]
    watch.assert_no_password_anywhere()


def test_a_password_change_event_replaces_the_password_for_both_logins(sync_env, watch, tmp_path):
    bob = tenant_user("bob", "Bob Stone")
    emu = sync_env.start_tenant({"users": [bob]})
    use_key_vault(sync_env, emu)
    watch.run()
    vault = key_vault(emu)
    initial = vault.read_initial(bob["id"])["password"]
    changed = new_password()
    watch.passwords |= {initial, changed}
    vault.drop_change(bob["id"], changed, datetime.now(UTC))

    result = watch.run()
    counts = result["credentials"]["password_changes"]
    assert result["credentials"]["source"] == "keyvault" and counts["set"] == 1
    assert counts["skipped_stale"] == counts["failed"] == 0
    assert result["report"]["password_changes"]["set"] == 1
    assert ldap_login(sync_env.domain, "bob@contoso.example", changed) == (True, "")
    assert WRONG in ldap_login(sync_env.domain, "bob@contoso.example", initial)[1]
    assert kinit(sync_env.domain, tmp_path, "bob", changed)[0] == 0
    assert "Password incorrect" in kinit(sync_env.domain, tmp_path, "bob", initial)[1]
    # consumed: marked in the vault, nothing left to apply
    assert vault.pending() == ([], [])
    assert watch.run()["credentials"]["password_changes"]["set"] == 0
    assert ldap_login(sync_env.domain, "bob@contoso.example", changed)[0]
    watch.assert_no_password_anywhere()


def test_a_user_disabled_in_the_tenant_cannot_sign_in_until_enabled_again(sync_env, watch, tmp_path):
    cy, emu, password = signed_up(sync_env, watch, "cy", "Cy Doe")

    emu.admin.update_user(cy["id"], {"accountEnabled": False})
    watch.run()
    bound, message = ldap_login(sync_env.domain, "cy@contoso.example", password)
    assert not bound and DISABLED in message, message
    code, output = kinit(sync_env.domain, tmp_path, "cy", password)
    assert code != 0 and "revoked" in output, output

    emu.admin.update_user(cy["id"], {"accountEnabled": True})
    watch.run()
    assert ldap_login(sync_env.domain, "cy@contoso.example", password)[0]
    assert kinit(sync_env.domain, tmp_path, "cy", password)[0] == 0
    watch.assert_no_password_anywhere()


def test_the_tenant_asking_for_a_new_password_makes_the_domain_ask_too_once(sync_env, watch, tmp_path):
    dee, emu, password = signed_up(sync_env, watch, "dee", "Dee Park")

    # An admin resets the password in the tenant with "must change at next sign-in".
    tenant_password = new_password()
    watch.passwords.add(tenant_password)
    reset = emu.admin.update_user(dee["id"], {"passwordProfile": {"password": tenant_password,
                                                                  "forceChangePasswordNextSignIn": True}})
    result = watch.run()
    assert result["plan"]["counts"].get("user.modify") == 1 and pwd_last_set(sync_env, "dee") == "0"
    assert MUST_CHANGE in ldap_login(sync_env.domain, "dee@contoso.example", password)[1]
    # The person changes it after the reset: in a later second than the tenant's lastPasswordChangeDateTime
    # (a run and a login may take less than a second).
    past_the_second_of(reset["lastPasswordChangeDateTime"])
    chosen = new_password()
    watch.passwords.add(chosen)
    assert kinit(sync_env.domain, tmp_path, "dee", password, chosen, chosen)[0] == 0
    # changed by the person: never touched again, though the tenant's flag stays
    assert watch.run()["plan"]["changes"] == 0
    assert ldap_login(sync_env.domain, "dee@contoso.example", chosen)[0]
    watch.assert_no_password_anywhere()


def test_replayed_out_of_order_and_corrupt_envelopes_each_do_the_right_thing(sync_env, watch, tmp_path):
    eve = tenant_user("eve", "Eve Moss")
    sync_env.start_tenant({"users": [eve]})
    drop = use_drop_folder(sync_env, tmp_path / "drop")
    watch.run()
    initial = drop.read_initial(eve["id"])["password"]
    assert MUST_CHANGE in ldap_login(sync_env.domain, "eve@contoso.example", initial)[1]
    now = datetime.now(UTC)
    first_pw, second_pw, old_pw = new_password(), new_password(), new_password()
    watch.passwords |= {initial, first_pw, second_pw, old_pw}

    drop.drop_change(eve["id"], first_pw, now, "e-1")
    assert watch.run()["credentials"]["password_changes"]["set"] == 1
    assert ldap_login(sync_env.domain, "eve@contoso.example", first_pw)[0]
    set_at = pwd_last_set(sync_env, "eve")

    # A replay: the consumed envelope dropped in again. Recognized, nothing written.
    (consumed,) = (drop.path / "consumed").iterdir()
    shutil.copy(consumed, drop.path / "inbox" / consumed.name)
    result = watch.run()["credentials"]["password_changes"]
    assert (result["replayed"], result["set"]) == (1, 0)
    assert pwd_last_set(sync_env, "eve") == set_at

    # Out of order: an event older than the one applied. Ignored and reported; the newer password stays.
    drop.drop_change(eve["id"], old_pw, now - timedelta(hours=1), "e-0")
    # Corrupt: an envelope whose bytes were changed. Set aside, reported, never applied.
    tampered = bytearray(drop.seal({"type": "password_change", "event_id": "e-x", "object_id": eve["id"],
                                    "password": second_pw, "changed_at": (now + timedelta(hours=1)).isoformat()}))
    tampered[-5] = ord("A") if tampered[-5] != ord("A") else ord("B")
    (drop.path / "inbox" / "tampered.fernet").write_bytes(bytes(tampered))
    result = watch.run()
    counts = result["credentials"]["password_changes"]
    assert (counts["skipped_stale"], counts["set_aside"], counts["set"]) == (1, 1, 0)
    details = json.loads(Path(result["credentials"]["results_file"]).read_text())
    assert details["events"][0]["event_id"] == "dropfolder:e-0" and details["events"][0]["outcome"] == "stale"
    assert details["set_aside"] == [{"origin": "inbox/tampered.fernet",
                                     "reason": "does not decrypt or verify with the connection's key (corrupt, or "
                                               "another key)"}]
    assert (drop.path / "rejected" / "tampered.fernet").exists() and not list((drop.path / "inbox").iterdir())
    from domain_sync.alerts import read_alerts

    alert = [a for a in read_alerts(sync_env.settings) if a["kind"] == "credential_events"][-1]
    assert alert["skipped_stale"] == 1 and alert["set_aside"] == 1
    assert ldap_login(sync_env.domain, "eve@contoso.example", first_pw)[0]
    assert WRONG in ldap_login(sync_env.domain, "eve@contoso.example", old_pw)[1]
    assert WRONG in ldap_login(sync_env.domain, "eve@contoso.example", second_pw)[1]
    watch.assert_no_password_anywhere()


def test_a_password_is_refused_over_plain_ldap_whatever_the_server_allows(sync_env):
    """Samba takes unicodePwd on 389 without TLS (the test DC allows simple binds there); the writer does not."""
    import ldap3

    domain = sync_env.domain
    conn_data = domain.connection()
    plain = ldap3.Connection(ldap3.Server(domain.address, port=389, get_info=ldap3.NONE), user=conn_data["login"],
                             password=conn_data["password"], auto_bind=True)
    user_id = str(uuid.uuid4())
    container = sync_env.container_dn
    plain.add(container, ["top", "organizationalUnit"])
    dn = f"CN=Plain Text,{container}"
    change = Change(Op.CREATE, "user", user_id, dn, reason="initial password", values={
        "objectClass": ["top", "person", "organizationalPerson", "user"], "sAMAccountName": ["plaintext"],
        "userAccountControl": ["512"], "pwdLastSet": ["0"], "info": [user_id]})
    writer = DomainWriter(lambda: plain, "info", retry_budget_seconds=1)
    with pytest.raises(InsecureConnection, match="unencrypted"):
        writer.apply(change)
    plain.search(dn, "(objectClass=*)", search_scope="BASE")
    assert plain.result["result"] == 32, "nothing was created"
    plain.unbind()


def test_the_initial_password_follows_the_domains_own_policy(sync_env, watch):
    """The policy is read from the domain, not assumed: a domain that asks for 40 characters gets them."""
    conn = sync_env.ldap()
    conn.search(sync_env.domain.base_dn, "(objectClass=*)", search_scope="BASE", attributes=["minPwdLength"])
    before = str(conn.entries[0]["minPwdLength"].value)
    assert conn.modify(sync_env.domain.base_dn, {"minPwdLength": [("MODIFY_REPLACE", ["40"])]}), conn.result
    try:
        eva = tenant_user("eva", "Eva Berg")
        emu = sync_env.start_tenant({"users": [eva]})
        use_key_vault(sync_env, emu)
        result = watch.run()
        assert result["apply"]["failed"] == [], result["apply"]
        password = key_vault(emu).read_initial(eva["id"])["password"]
        watch.passwords.add(password)
        assert len(password) >= 40
        bound, message = ldap_login(sync_env.domain, "eva@contoso.example", password)
        assert not bound and MUST_CHANGE in message, message  # the domain took it: only the change is due
    finally:
        assert conn.modify(sync_env.domain.base_dn, {"minPwdLength": [("MODIFY_REPLACE", [before])]}), conn.result
        conn.unbind()
    watch.assert_no_password_anywhere()
