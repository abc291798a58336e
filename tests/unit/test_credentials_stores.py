"""The credential stores: the drop folder (Fernet envelopes) and Azure Key Vault (through SecretClient,
against the emulator's vault), and the settings that choose them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet

from domain_sync.config import Settings, SettingsError
from domain_sync.passwords.dropfolder import DropFolderStore, EnvelopeUnreadable
from domain_sync.passwords.keyvault import CHANGE_PREFIX, INITIAL_PREFIX, MARK, KeyVaultStore
from domain_sync.passwords.stores import APPLIED, REFUSED, InitialPassword, StoreRefused, open_sink, open_source

OID = "11111111-1111-1111-1111-111111111111"
T0 = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


def initial(password="Initial-Pass-1"):
    return InitialPassword(OID, "ana@corp.example.test", "ana", password, T0, T0 + timedelta(days=7))


# ---------------------------------------------------------------- drop folder

@pytest.fixture
def folder(tmp_path):
    return DropFolderStore(tmp_path / "drop", [Fernet.generate_key().decode()])


def test_an_initial_password_envelope_is_encrypted_and_reads_back(folder):
    folder.deliver_initial(initial())
    (path,) = (folder.path / "initial").iterdir()
    assert b"Initial-Pass-1" not in path.read_bytes() and path.stat().st_mode & 0o077 == 0
    envelope = folder.read_initial(OID)
    assert envelope["password"] == "Initial-Pass-1" and envelope["sAMAccountName"] == "ana"
    assert envelope["expires_at"] == (T0 + timedelta(days=7)).isoformat()
    assert folder.read_initial("22222222-2222-2222-2222-222222222222") is None


def test_dropped_changes_are_read_with_their_time_and_id_and_consumed_ones_move_away(folder):
    folder.drop_change(OID, "Changed-Pass-2", T0, "e-1")
    (event,), set_aside = folder.pending()
    assert set_aside == [] and event.object_id == OID and event.changed_at == T0
    assert event.event_id == "dropfolder:e-1" and event.password == "Changed-Pass-2"
    assert "Changed-Pass-2" not in repr(event)
    folder.mark(event, APPLIED)
    assert folder.pending() == ([], []) and len(list((folder.path / "consumed").iterdir())) == 1


def test_a_refused_event_goes_to_rejected(folder):
    folder.drop_change(OID, "short", T0, "e-2")
    (event,), _ = folder.pending()
    folder.mark(event, REFUSED)
    assert [p.name.endswith(".fernet") for p in (folder.path / "rejected").iterdir()] == [True]


def test_envelopes_that_do_not_decrypt_verify_or_parse_are_set_aside_never_read(folder, tmp_path):
    inbox = folder.path / "inbox"
    good = folder.drop_change(OID, "Changed-Pass-3", T0, "e-3")
    corrupt = bytearray(good.read_bytes())
    corrupt[60] = ord("A") if corrupt[60] != ord("A") else ord("B")
    (inbox / "corrupt.fernet").write_bytes(bytes(corrupt))
    other_key = DropFolderStore(tmp_path / "other", [Fernet.generate_key().decode()])
    (inbox / "other-key.fernet").write_bytes(other_key.seal({"type": "password_change"}))
    (inbox / "not-json.fernet").write_bytes(folder._fernet.encrypt(b"[1, 2]"))
    (inbox / "no-time.fernet").write_bytes(folder.seal({"type": "password_change", "event_id": "x", "object_id": OID,
                                                       "password": "p", "changed_at": "yesterday"}))
    (inbox / ".partial-being-written").write_bytes(b"...")
    events, set_aside = folder.pending()
    assert [e.event_id for e in events] == ["dropfolder:e-3"]
    reasons = {s.origin: s.reason for s in set_aside}
    assert set(reasons) == {"inbox/corrupt.fernet", "inbox/other-key.fernet", "inbox/not-json.fernet",
                            "inbox/no-time.fernet"}
    assert "does not decrypt or verify" in reasons["inbox/corrupt.fernet"]
    assert "does not decrypt or verify" in reasons["inbox/other-key.fernet"]
    assert "changed_at" in reasons["inbox/no-time.fernet"]
    assert {p.name for p in (folder.path / "rejected").iterdir()} == {"corrupt.fernet", "other-key.fernet",
                                                                      "not-json.fernet", "no-time.fernet"}
    assert (inbox / ".partial-being-written").exists()


def test_a_drop_folder_needs_a_fernet_key(tmp_path):
    with pytest.raises(StoreRefused, match="Fernet"):
        DropFolderStore(tmp_path, ["not-a-key"])
    with pytest.raises(StoreRefused, match="path"):
        DropFolderStore.from_connection(SimpleNamespace(extra_dejson={}, host=None, password="k"))


# ---------------------------------------------------------------- Key Vault, against the emulator

@pytest.fixture
def vault(tmp_path):
    from emulator.certs import ensure_certs
    from emulator.listeners import Emulator
    from emulator.state import vault_connection_dict
    from emulator.tenant import Tenant

    emu = Emulator(Tenant(), tenant_id="tenant-kv", client_id="client-kv", client_secret="kv-secret",
                   certs=ensure_certs(tmp_path / "certs")).start()
    try:
        info = {"vault_url": emu.vault_url, "authority": emu.authority, "tenant_id": emu.tenant_id,
                "client_id": emu.client_id, "ca_file": str(emu.certs.ca_file)}
        data = vault_connection_dict(info, emu.client_secret)
        conn = SimpleNamespace(host=data["host"], login=data["login"], password=data["password"],
                               extra_dejson=data["extra"])
        yield KeyVaultStore.from_connection(conn), emu
    finally:
        emu.stop()


def test_key_vault_holds_the_initial_password_with_its_expiry(vault):
    store, _emu = vault
    store.deliver_initial(initial())
    secret = store.client.get_secret(f"{INITIAL_PREFIX}{OID}")
    assert secret.value == "Initial-Pass-1" and secret.properties.expires_on == T0 + timedelta(days=7)
    assert secret.properties.tags["sAMAccountName"] == "ana" and secret.properties.content_type == "password"
    assert store.read_initial(OID)["password"] == "Initial-Pass-1"


def test_key_vault_versions_are_events_across_pages_and_marked_ones_are_done(vault):
    store, emu = vault
    for i in range(30):  # more than one page of versions
        store.client.set_secret(f"{CHANGE_PREFIX}{OID}", f"pw-{i}", tags={"changedAt": (T0 + timedelta(minutes=i))
                                                                         .isoformat()})
    events, set_aside = store.pending()
    assert len(events) == 30 and set_aside == []
    assert sorted(e.changed_at for e in events)[0] == T0
    store.mark(events[0], APPLIED)
    version = next(v for v in store.client.list_properties_of_secret_versions(f"{CHANGE_PREFIX}{OID}")
                   if f"{v.name}/{v.version}" == events[0].origin)
    assert version.enabled is False and version.tags[MARK] == APPLIED and "changedAt" in version.tags
    assert len(store.pending()[0]) == 29
    # the client went through the vault's challenge: one unauthenticated request answered 401
    assert emu.stats.snapshot()["vault_requests"]["/secrets/{name}"]["401"] == 1


def test_key_vault_secrets_that_are_no_events_are_set_aside(vault):
    store, _emu = vault
    store.client.set_secret(f"{CHANGE_PREFIX}not-an-object-id", "pw")
    store.client.set_secret(f"{CHANGE_PREFIX}{OID}", "pw", tags={"changedAt": "soon"})
    store.client.set_secret("unrelated-secret", "pw")
    events, set_aside = store.pending()
    assert events == [] and len(set_aside) == 2
    assert store.pending() == ([], [])  # marked rejected: not read again


def test_key_vault_refusing_the_credentials_is_permanent(vault):
    _store, emu = vault
    from emulator.state import vault_connection_dict

    info = {"vault_url": emu.vault_url, "authority": emu.authority, "tenant_id": emu.tenant_id,
            "client_id": emu.client_id, "ca_file": str(emu.certs.ca_file)}
    data = vault_connection_dict(info, "wrong-secret")
    store = KeyVaultStore.from_connection(SimpleNamespace(host=data["host"], login=data["login"],
                                                          password=data["password"], extra_dejson=data["extra"]))
    with pytest.raises(StoreRefused):
        store.deliver_initial(initial())


# ---------------------------------------------------------------- settings

def test_store_settings_take_only_the_documented_values():
    with pytest.raises(SettingsError, match="DOMAIN_SYNC_CREDENTIAL_SINK"):
        Settings(credential_sink="s3")
    with pytest.raises(SettingsError, match="DOMAIN_SYNC_CREDENTIAL_SOURCE"):
        Settings(credential_source="email")
    with pytest.raises(SettingsError, match="sets none"):
        Settings(credential_sink="dropfolder", initial_password="none")
    assert open_sink(Settings()) is None and open_source(Settings()) is None


def test_stores_come_from_their_airflow_connections(tmp_path):
    key = Fernet.generate_key().decode()
    connections = {"drop": SimpleNamespace(extra_dejson={"path": str(tmp_path / "d")}, host=None, password=key)}
    settings = Settings(credential_sink="dropfolder", credential_sink_conn_id="drop", credential_source="dropfolder",
                        credential_source_conn_id="drop")
    assert open_sink(settings, connections.__getitem__).name == "dropfolder"
    assert open_source(settings, connections.__getitem__).path == tmp_path / "d"


# ---------------------------------------------------------------- the command line

def test_the_helpdesk_reads_an_initial_password_and_queues_a_change_from_the_command_line(tmp_path, monkeypatch,
                                                                                        capsys):
    import io
    import json

    from domain_sync.credentials.__main__ import main

    assert main(["key"]) == 0
    key = capsys.readouterr().out.strip()
    monkeypatch.setenv("AIRFLOW_CONN_DROP_CLI", json.dumps({"conn_type": "fs", "password": key,
                                                            "extra": {"path": str(tmp_path / "d")}}))
    for name, value in (("credential_sink", "dropfolder"), ("credential_source", "dropfolder"),
                        ("credential_sink_conn_id", "drop_cli"), ("credential_source_conn_id", "drop_cli")):
        monkeypatch.setenv(f"DOMAIN_SYNC_{name.upper()}", value)
    store = DropFolderStore(tmp_path / "d", [key])
    created = datetime.now(UTC)  # the command compares the expiry with the clock
    store.deliver_initial(InitialPassword(OID, "ana@corp.example.test", "ana", "Initial-Pass-1", created,
                                          created + timedelta(days=7)))
    assert main(["initial", OID]) == 0 and capsys.readouterr().out == "Initial-Pass-1\n"
    assert main(["initial", "22222222-2222-2222-2222-222222222222"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("Chosen-Pass-9\n"))
    assert main(["change", OID]) == 0
    (event,), _ = store.pending()
    assert event.object_id == OID and event.password == "Chosen-Pass-9"
    assert main(["initial", "not-an-id"]) == 2
    # Past its expiry the initial password is not handed out: the helpdesk resets the password instead.
    store.deliver_initial(InitialPassword(OID, "ana@corp.example.test", "ana", "Initial-Pass-2",
                                          datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 8, tzinfo=UTC)))
    assert main(["initial", OID]) == 1
    captured = capsys.readouterr()
    assert "Initial-Pass-2" not in captured.out + captured.err and "expired at 2020-01-08" in captured.err


def test_an_initial_password_envelope_that_cannot_be_opened_is_a_declared_error(folder, tmp_path, monkeypatch, capsys):
    folder.deliver_initial(initial())
    (path,) = (folder.path / "initial").iterdir()
    path.write_bytes(DropFolderStore(tmp_path / "other", [Fernet.generate_key().decode()]).seal({"password": "x"}))
    with pytest.raises(EnvelopeUnreadable, match=f"initial password envelope of user {OID}.*does not decrypt"):
        folder.read_initial(OID)
    path.write_bytes(folder._fernet.encrypt(b"not json"))
    with pytest.raises(EnvelopeUnreadable, match="not a JSON object"):
        folder.read_initial(OID)

    from domain_sync.credentials.__main__ import main

    monkeypatch.setattr("domain_sync.credentials.__main__.airflow_connection", lambda conn_id: SimpleNamespace(
        extra_dejson={"path": str(folder.path)}, host=None, password=Fernet.generate_key().decode()))
    monkeypatch.setenv("DOMAIN_SYNC_CREDENTIAL_SINK", "dropfolder")
    assert main(["initial", OID]) == 1  # another key: an error line, not a traceback
    assert "EnvelopeUnreadable" in capsys.readouterr().err
