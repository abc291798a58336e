"""The local Samba AD DC made by the local_domain package (scripts/local-domain): validated LDAPS, binds, persistence."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import uuid
from pathlib import Path

import ldap3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3.core.exceptions import LDAPBindError, LDAPSocketOpenError

import local_domain as dc
from tests.fixtures.local_domain import pick_test_address, port_in_use, release_address, run_local_domain

pytestmark = pytest.mark.integration


def _unrelated_ca(path: Path) -> Path:
    """Write a self-signed CA certificate that did not sign the DC's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unrelated Test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_ldaps_handshake_validates_against_domain_ca(local_domain):
    ctx = ssl.create_default_context(cafile=local_domain.ca_file)
    address = (local_domain.address, local_domain.port)
    with (
        socket.create_connection(address, timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname=local_domain.server_name) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        cert = tls.getpeercert()
    subject = dict(item[0] for item in cert["subject"])
    assert subject["commonName"].lower() == local_domain.server_name


def test_handshake_fails_with_wrong_ca(local_domain, tmp_path):
    ctx = ssl.create_default_context(
        cafile=str(_unrelated_ca(tmp_path / "other-ca.pem"))
    )
    address = (local_domain.address, local_domain.port)
    with (
        socket.create_connection(address, timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(sock, server_hostname=local_domain.server_name)


def test_ldap3_connection_refuses_wrong_ca(local_domain, tmp_path):
    wrong_ca = str(_unrelated_ca(tmp_path / "other-ca.pem"))
    with pytest.raises(LDAPSocketOpenError):
        local_domain.ldap_connection(ca_file=wrong_ca)


def test_ldap3_connection_refuses_wrong_server_name(local_domain):
    tls = ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=local_domain.ca_file,
        valid_names=["not-the-dc.corp.example.test"],
    )
    server = ldap3.Server(
        local_domain.address,
        port=local_domain.port,
        use_ssl=True,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=10,
    )
    conn = ldap3.Connection(
        server, user=local_domain.bind_dn, password=local_domain.password
    )
    with pytest.raises(LDAPSocketOpenError):
        conn.open()


def test_admin_simple_bind_over_ldaps(local_domain):
    conn = local_domain.ldap_connection()
    try:
        assert conn.bound
        assert conn.server.ssl
        assert conn.search(
            local_domain.bind_dn,
            "(objectClass=user)",
            search_scope=ldap3.BASE,
            attributes=["sAMAccountName"],
        )
        assert str(conn.entries[0].sAMAccountName) == "Administrator"
    finally:
        conn.unbind()


def test_wrong_password_is_refused(local_domain):
    with pytest.raises(LDAPBindError):
        local_domain.ldap_connection(password="not-the-password-1A!")


def test_root_dse_names_base_dn(local_domain):
    conn = local_domain.ldap_connection()
    try:
        assert conn.search(
            "",
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=["defaultNamingContext", "namingContexts", "dnsHostName"],
        )
        entry = conn.entries[0]
        assert str(entry.defaultNamingContext) == local_domain.base_dn
        assert local_domain.base_dn in [str(v) for v in entry.namingContexts]
        assert str(entry.dnsHostName).lower() == local_domain.server_name
    finally:
        conn.unbind()


def test_connection_json(local_domain):
    conn = json.loads(local_domain.connection_json())
    assert conn == {
        "conn_type": "ldap",
        "host": local_domain.address,
        "port": 636,
        "login": local_domain.bind_dn,
        "password": local_domain.password,
        "extra": {
            "base_dn": local_domain.base_dn,
            "ca_file": local_domain.ca_file,
            "tls_server_name": local_domain.server_name,
            "realm": local_domain.realm,
        },
    }
    facts = json.loads((local_domain.dir / "domain.json").read_text())
    assert "password" not in facts
    assert facts["password_file"] == str(local_domain.password_file)
    assert local_domain.password_file.stat().st_mode & 0o777 == 0o600


def test_command_line_prints_the_same_connection(local_domain):
    printed = run_local_domain("connection", local_domain.dir).stdout
    assert json.loads(printed) == local_domain.connection()
    assert printed == dc.connection_json(dc.connection(local_domain.dir))


def test_command_line_status_and_start_of_a_running_domain(local_domain):
    status = run_local_domain("status", local_domain.dir)
    assert (status.returncode, status.stdout) == (0, "running\n")
    started = run_local_domain("start", local_domain.dir, local_domain.address)
    assert f"already running (pid {local_domain.pid}) on {local_domain.address}" in started.stderr


def test_provisioned_files(local_domain):
    folder = dc.DomainFolder(local_domain.dir)
    assert folder.is_provisioned()
    assert folder.recorded_address() == local_domain.address
    smb_conf = folder.smb_conf.read_text()
    for line in dc.EXTRA_GLOBAL_SETTINGS:
        assert f"\t{line}\n" in smb_conf
    assert f"kdc = {local_domain.address}" in local_domain.krb5_conf.read_text()
    assert local_domain.dir.stat().st_mode & 0o777 == 0o700


def test_provision_again_is_a_no_op_and_refuses_another_address(local_domain):
    before = local_domain.password
    dc.provision(local_domain.dir, local_domain.address)
    assert local_domain.password == before
    with pytest.raises(dc.LocalDomainError, match="already provisioned for address"):
        dc.provision(local_domain.dir, "127.0.0.21")
    with pytest.raises(dc.LocalDomainError, match="was provisioned for address"):
        dc.start(local_domain.dir, "127.0.0.21")


def test_a_picked_address_looks_taken_to_other_sessions_until_released(local_domain):
    address = pick_test_address()
    second = None
    try:
        assert address != local_domain.address
        assert port_in_use(address, 636) and port_in_use(address, 389)
        second = pick_test_address()
        assert second not in (address, local_domain.address)
    finally:
        release_address(address)
        if second:
            release_address(second)
    assert not port_in_use(address, 636)


def test_kinit_against_the_domains_kdc(local_domain, tmp_path):
    kinit = shutil.which("kinit")
    assert kinit, "kinit is missing (Debian's krb5-user; scripts/bootstrap.sh installs it)"
    env = dict(os.environ, KRB5_CONFIG=str(local_domain.krb5_conf), KRB5CCNAME=f"FILE:{tmp_path / 'ccache'}")
    principal = f"Administrator@{local_domain.realm}"
    ok = subprocess.run([kinit, principal], input=local_domain.password + "\n", env=env,
                        capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "ccache").stat().st_size > 0
    wrong = subprocess.run([kinit, principal], input="not-the-password-1A!\n", env=env,
                           capture_output=True, text=True, timeout=30, check=False)
    assert wrong.returncode != 0
    assert "Password incorrect" in wrong.stderr


def _ou_exists(domain, dn: str) -> bool:
    conn = domain.ldap_connection()
    try:
        return conn.search(
            dn, "(objectClass=organizationalUnit)", search_scope=ldap3.BASE
        )
    finally:
        conn.unbind()


def test_restart_keeps_data(local_domain):
    ou_dn = f"OU=persist-{uuid.uuid4().hex[:8]},{local_domain.base_dn}"
    conn = local_domain.ldap_connection()
    try:
        assert conn.add(ou_dn, "organizationalUnit"), conn.result
    finally:
        conn.unbind()

    local_domain.restart()
    assert local_domain.is_running()
    assert _ou_exists(local_domain, ou_dn)

    local_domain.kill()
    assert not local_domain.is_running()
    local_domain.start()
    assert _ou_exists(local_domain, ou_dn)


def test_postgres_url_is_a_fresh_database(postgres_url):
    import sqlalchemy

    assert postgres_url.startswith("postgresql+psycopg2://postgres@127.0.0.1:5432/")
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(sqlalchemy.text("select current_database()")).scalar()
                == postgres_url.rsplit("/", 1)[1]
            )
            tables = conn.execute(
                sqlalchemy.text(
                    "select count(*) from information_schema.tables where table_schema = 'public'"
                )
            ).scalar()
            assert tables == 0
    finally:
        engine.dispose()
