"""The domain connection's extras are read strictly: known keys only, booleans only true/false, no
wildcard server name; certificate validation turned off warns on every connect and alerts once per run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import local_domain
from domain_sync.alerts import read_alerts
from domain_sync.config import Settings, SettingsError
from domain_sync.domain import CONNECTION_EXTRAS, connect, endpoint_from_connection
from tests.fixtures.fake_ldap import FakeDirectory, self_signed_tls

BASE_DN = "DC=corp,DC=example,DC=test"


class Conn:
    def __init__(self, host="dc1.corp.example.test", port=None, **extra):
        self.host, self.port, self.login, self.password = host, port, "CN=admin", "secret"
        self.extra_dejson = {"base_dn": BASE_DN, **extra}


@pytest.mark.parametrize("key", ["start_tls", "validate_tls"])
@pytest.mark.parametrize("value", ["yes", "no", "1", "0", "", "on", " true", 1, 0, [], {}])
def test_boolean_extras_accept_only_true_or_false(key, value):
    with pytest.raises(SettingsError, match=f"connection 'ldap_domain'.*extra.{key}"):
        endpoint_from_connection(Conn(**{key: value}), "ldap_domain")


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("true", True), ("FALSE", False),
                                             ("False", False), ("tRuE", True)])
def test_boolean_extras_as_json_or_text(value, expected):
    endpoint = endpoint_from_connection(Conn(start_tls=value, validate_tls=value), "ldap_domain")
    assert (endpoint.start_tls, endpoint.validate_tls) == (expected, expected)


@pytest.mark.parametrize("key", ["verify_tls", "StartTLS", "password", "ca_cert"])
def test_an_unknown_extra_is_a_settings_error_naming_connection_and_key(key):
    with pytest.raises(SettingsError, match=f"connection 'ldap_domain': unknown extra {key}") as caught:
        endpoint_from_connection(Conn(**{key: "s3cr3t-value"}), "ldap_domain")
    assert "s3cr3t-value" not in str(caught.value)


@pytest.mark.parametrize("name", ["*", "*.corp.example.test", "dc*.corp.example.test"])
def test_a_wildcard_tls_server_name_is_refused(name):
    with pytest.raises(SettingsError, match="connection 'ldap_domain': extra.tls_server_name .* wildcard"):
        endpoint_from_connection(Conn(tls_server_name=name), "ldap_domain")


@pytest.mark.parametrize("key", ["base_dn", "ca_file", "tls_server_name", "realm"])
def test_text_extras_must_be_text(key):
    with pytest.raises(SettingsError, match=f"extra.{key} must be a string"):
        endpoint_from_connection(Conn(**{key: 5}), "ldap_domain")


def test_the_local_domains_connection_is_accepted(tmp_path):
    folder = local_domain.DomainFolder(tmp_path)
    folder.password_file.write_text("Secret-1a")
    facts = local_domain.connection_facts(folder, "127.0.0.2", with_password=True)

    class FromFacts:
        host, port, login, password = facts["host"], facts["port"], facts["login"], facts["password"]
        extra_dejson = facts["extra"]

    endpoint = endpoint_from_connection(FromFacts(), "ldap_domain")
    assert (endpoint.tls_server_name, endpoint.validate_tls, endpoint.start_tls) == (local_domain.SERVER_NAME,
                                                                                    True, False)


def test_every_extra_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The domain connection's extras", 1)[1].split("\n#", 1)[0]
    documented = {line.split("|")[1].strip().strip("`") for line in section.splitlines()
                  if line.startswith("| `")}
    assert documented == set(CONNECTION_EXTRAS)


def tls_off_alerts():
    return [(a["kind"], a.get("run_id"), a["conn_id"]) for a in read_alerts(Settings.from_env())
            if a["kind"] == "tls_validation_off"]


def connect_in_another_process(endpoint, run_id: str) -> None:
    """What another task of the run does: its own process, the same data folder."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys; from domain_sync.domain import connect, endpoint_from_connection; "
            "from tests.unit.test_domain_extras import Conn; "
            f"connect(endpoint_from_connection(Conn('127.0.0.1', {endpoint.port}, validate_tls='false'), "
            f"'ldap_domain'), run_id={run_id!r}).unbind()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "include"), str(root)])})


def test_validation_off_warns_on_every_connect_and_alerts_once_per_run(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    cert, key = self_signed_tls(tmp_path)
    with FakeDirectory("127.0.0.1", tls=(cert, key)) as dc:
        # no CA file: only a connection with validation off gets through to this certificate
        endpoint = endpoint_from_connection(Conn("127.0.0.1", dc.port, validate_tls="false"), "ldap_domain")
        with caplog.at_level(logging.WARNING, logger="domain_sync.domain"):
            for _ in range(3):
                connect(endpoint, run_id="run-1").unbind()
            connect_in_another_process(endpoint, "run-1")  # a later task of the same run
            for _ in range(2):
                connect(endpoint, run_id="run-2").unbind()  # the next run, in the same process
            connect_in_another_process(endpoint, "run-3")
        assert len(dc.binds) == 7
    warnings = [r for r in caplog.records if r.name == "domain_sync.domain" and "validate_tls false" in r.message]
    assert len(warnings) == 5  # this process's connects; the other process logged its own
    assert tls_off_alerts() == [("tls_validation_off", run, "ldap_domain") for run in ("run-1", "run-2", "run-3")]
    assert "secret" not in read_alerts(Settings.from_env())[0]["message"]


def test_validation_off_outside_a_run_alerts_on_each_connect(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    cert, key = self_signed_tls(tmp_path)
    with FakeDirectory("127.0.0.1", tls=(cert, key)) as dc:
        endpoint = endpoint_from_connection(Conn("127.0.0.1", dc.port, validate_tls="false"), "ldap_domain")
        for _ in range(2):
            connect(endpoint).unbind()
    assert tls_off_alerts() == [("tls_validation_off", None, "ldap_domain")] * 2


def test_validation_on_neither_warns_nor_alerts(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    cert, key = self_signed_tls(tmp_path)
    with FakeDirectory("127.0.0.1", tls=(cert, key)) as dc:
        endpoint = endpoint_from_connection(
            Conn("127.0.0.1", dc.port, ca_file=str(cert), tls_server_name="fake-dc.example.test"), "ldap_domain")
        with caplog.at_level(logging.WARNING, logger="domain_sync.domain"):
            connect(endpoint).unbind()
    assert not [r for r in caplog.records if r.name == "domain_sync.domain"]
    assert read_alerts(Settings.from_env()) == []
