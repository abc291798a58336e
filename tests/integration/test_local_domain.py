"""The local Samba AD DC made by scripts/local-domain: validated LDAPS, binds, persistence."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import uuid
from pathlib import Path

import ldap3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3.core.exceptions import LDAPBindError, LDAPSocketOpenError

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
