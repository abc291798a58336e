"""The local domain's constants and command line (no Samba needed)."""

from __future__ import annotations

import json
import subprocess

import pytest

import local_domain
from local_domain import LocalDomainError
from local_domain.__main__ import STOPPED, build_parser, main


def test_names_are_defined_once_and_agree():
    assert local_domain.REALM == "CORP.EXAMPLE.TEST"
    assert local_domain.SERVER_NAME == "dc1.corp.example.test"
    assert local_domain.BASE_DN == "DC=corp,DC=example,DC=test"
    assert local_domain.BIND_DN == "CN=Administrator,CN=Users,DC=corp,DC=example,DC=test"
    assert len(local_domain.HOST_NAME) <= 15 and local_domain.HOST_NAME.upper() != local_domain.NETBIOS_DOMAIN
    assert (local_domain.LDAP_PORT, local_domain.LDAPS_PORT) == (389, 636)


@pytest.mark.parametrize("command", local_domain.COMMANDS)
def test_every_command_parses(command):
    args = build_parser().parse_args([command, "some/dir", "--address", "127.0.0.2"])
    assert (args.command, args.dir, args.address) == (command, "some/dir", "127.0.0.2")


def test_realm_is_an_option_of_provision():
    assert build_parser().parse_args(["provision", "d", "--realm", "AD.EXAMPLE.NET"]).realm == "AD.EXAMPLE.NET"
    assert build_parser().parse_args(["provision", "d"]).realm is None


def test_address_is_optional_and_may_come_first():
    assert build_parser().parse_args(["start", "d"]).address is None
    assert build_parser().parse_args(["--address=0.0.0.0", "provision", "d"]).address == "0.0.0.0"


@pytest.mark.parametrize(
    "argv",
    [[], ["start"], ["restart", "d"], ["start", "d", "e"], ["provision", "d", "--address", "localhost"],
     ["provision", "d", "--address", "127.0.0.256"], ["provision", "d", "--address"]],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: local-domain" in capsys.readouterr().err


def test_status_of_a_missing_folder_is_stopped(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing")]) == STOPPED
    out = capsys.readouterr()
    assert out.out == "stopped\n"
    assert "is not provisioned" in out.err


def test_connection_of_a_missing_folder_fails_with_a_message(tmp_path, capsys):
    assert main(["connection", str(tmp_path)]) == 1
    assert "local-domain: error:" in capsys.readouterr().err


def test_connection_facts_name_the_password_file_or_the_password(tmp_path):
    folder = local_domain.DomainFolder(tmp_path)
    folder.password_file.write_text("Secret-1a")
    facts = local_domain.connection_facts(folder, "127.0.0.2", with_password=False)
    assert facts["password_file"] == str(folder.password_file) and "password" not in facts
    conn = json.loads(local_domain.connection_json(local_domain.connection_facts(folder, "127.0.0.2", with_password=True)))
    assert conn["password"] == "Secret-1a"
    assert conn["extra"] == {
        "base_dn": local_domain.BASE_DN,
        "ca_file": str(tmp_path / "private" / "tls" / "ca.pem"),
        "tls_server_name": local_domain.SERVER_NAME,
        "realm": local_domain.REALM,
    }


def test_another_realm_names_its_domain_and_the_folder_remembers_it(tmp_path):
    names = local_domain.domain_names("research.fabrikam-labs.co.uk.")
    assert (names.realm, names.dns_name, names.netbios_domain) == ("RESEARCH.FABRIKAM-LABS.CO.UK",
                                                                 "research.fabrikam-labs.co.uk", "RESEARCH")
    assert names.server_name == "dc1.research.fabrikam-labs.co.uk"
    assert names.bind_dn == "CN=Administrator,CN=Users,DC=research,DC=fabrikam-labs,DC=co,DC=uk"
    assert local_domain.domain_names("averyveryverylongname.test").netbios_domain == "AVERYVERYVERYLO"
    folder = local_domain.DomainFolder(tmp_path)
    assert folder.names == local_domain.domain_names()  # not provisioned yet: the default realm
    folder.password_file.write_text("Secret-1a")
    folder.domain_json.write_text(local_domain.connection_json(
        local_domain.connection_facts(folder, "127.0.0.2", with_password=False, names=names)))
    assert folder.names == names
    facts = local_domain.connection_facts(folder, "127.0.0.2", with_password=True)
    assert facts["login"] == names.bind_dn
    assert facts["extra"]["base_dn"] == "DC=research,DC=fabrikam-labs,DC=co,DC=uk"
    assert "default_realm = RESEARCH.FABRIKAM-LABS.CO.UK" in local_domain.krb5_conf_text("127.0.0.2", names)


@pytest.mark.parametrize("realm", ["LOCAL", "corp..test", "-corp.test", "dc1.example.test", "1corp.test",
                                   "corp_x.test", "a" * 64 + ".test"])
def test_a_realm_the_dc_cannot_take_is_refused(realm):
    with pytest.raises(LocalDomainError):
        local_domain.domain_names(realm)


def test_smb_conf_gets_the_settings_provision_drops():
    text = "[global]\n\tserver services = s3fs, rpc\n\tinterfaces = 127.0.0.2\n\n[netlogon]\n\tpath = x\n"
    changed = local_domain.add_global_settings(text)
    assert "s3fs" not in changed
    assert changed.startswith("[global]\n\tserver services = ldap, cldap, kdc\n\tldap server require strong auth = no\n")
    with pytest.raises(LocalDomainError):
        local_domain.add_global_settings("[netlogon]\n")


def test_recorded_address(tmp_path):
    folder = local_domain.DomainFolder(tmp_path)
    folder.smb_conf.parent.mkdir()
    folder.smb_conf.write_text("[global]\n\tinterfaces = 127.0.0.5\n")
    assert folder.recorded_address() == "127.0.0.5"
    folder.smb_conf.write_text("[global]\n\tnetbios name = DC1\n")
    assert folder.recorded_address() == "0.0.0.0"
    assert local_domain.connect_address("0.0.0.0") == "127.0.0.1"


def test_krb5_conf_names_the_kdc_by_address():
    text = local_domain.krb5_conf_text("127.0.0.2")
    assert "default_realm = CORP.EXAMPLE.TEST" in text
    assert "kdc = 127.0.0.2" in text and "dns_lookup_kdc = false" in text


def test_generated_passwords_meet_the_complexity_rules():
    password = local_domain.new_admin_password()
    assert any(c.isupper() for c in password) and any(c.islower() for c in password)
    assert any(c.isdigit() for c in password) and "-" in password and len(password) >= 20


def test_postgres_start_up_starts_every_cluster_then_waits(tmp_path, monkeypatch):
    from local_domain import postgres

    (tmp_path / "15").mkdir()
    monkeypatch.setattr(postgres, "CONF_ROOT", tmp_path)
    answers = iter([False, False])
    monkeypatch.setattr(postgres, "ready", lambda: next(answers, True))
    calls = []

    def fake_run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(postgres.subprocess, "run", fake_run)
    postgres.ensure_running(timeout=5)
    assert [args[-4:] for args in calls] == [["--skip-systemctl-redirect", "15", "main", "start"]]
    assert postgres.installed()


def test_postgres_start_up_says_when_it_is_not_installed(tmp_path, monkeypatch):
    from local_domain import postgres

    monkeypatch.setattr(postgres, "CONF_ROOT", tmp_path / "none")
    monkeypatch.setattr(postgres, "ready", lambda: False)
    assert not postgres.installed()
    with pytest.raises(postgres.PostgresError, match="not installed"):
        postgres.ensure_running(timeout=1)
    assert postgres.main(["installed"]) == 1


def test_postgres_installs_from_debian_with_recommends_and_trusts_local_logins_as_postgres(tmp_path, monkeypatch):
    from local_domain import postgres

    monkeypatch.setattr(postgres, "CONF_ROOT", tmp_path)
    monkeypatch.setattr(postgres, "ready", lambda: False)
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    hba = tmp_path / "15" / "main" / "pg_hba.conf"
    real_run, calls = subprocess.run, []

    def fake_run(args, **kwargs):
        calls.append(args)
        if args[0] == "bash":  # apt: the package makes cluster 15 "main"
            hba.parent.mkdir(parents=True)
            hba.write_text("# Debian's file\nlocal all postgres peer\n")
            return subprocess.CompletedProcess(args, 0)
        return real_run(args, **kwargs)  # sed, on the file above

    monkeypatch.setattr(postgres.subprocess, "run", fake_run)
    assert postgres.install() is True
    assert calls[0][-2:] == ['source "$0" && apt_install --recommends postgresql', str(postgres.LIB_SH)]
    assert [args[0] for args in calls] == ["bash", "sed"]
    assert hba.read_text().splitlines() == ["host all postgres 127.0.0.1/32 trust", "host all postgres ::1/128 trust",
                                            "# Debian's file", "local all postgres peer"]
    postgres.trust_local_logins(hba)
    assert postgres.install() is False and len(calls) == 2  # installed now; the lines are there once
    assert hba.read_text().count("trust") == 2


def test_postgres_install_stops_when_apt_fails(tmp_path, monkeypatch):
    from local_domain import postgres

    monkeypatch.setattr(postgres, "CONF_ROOT", tmp_path / "none")
    monkeypatch.setattr(postgres, "ready", lambda: False)
    monkeypatch.setattr(postgres.subprocess, "run", lambda args, **kwargs: subprocess.CompletedProcess(args, 100))
    with pytest.raises(postgres.PostgresError, match="installing Debian's postgresql failed"):
        postgres.install()


def test_postgres_ensure_installs_then_starts(monkeypatch):
    from local_domain import postgres

    steps = []
    monkeypatch.setattr(postgres, "ready", lambda: False)
    monkeypatch.setattr(postgres, "install", lambda: steps.append("install"))
    monkeypatch.setattr(postgres, "ensure_running", lambda: steps.append("start"))
    assert postgres.main(["ensure"]) == 0 and steps == ["install", "start"]
    assert postgres.main(["start"]) == 0 and steps == ["install", "start", "start"]


def test_the_shell_helper_postgres_installs_with_is_there():
    from local_domain import postgres

    result = subprocess.run(["bash", "-c", 'source "$0" && declare -F apt_install', str(postgres.LIB_SH)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "apt_install"
