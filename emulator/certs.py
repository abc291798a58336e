"""A private CA and a server certificate for the emulator's HTTPS token endpoint.

Files in the state directory: ca.pem (the CA certificate clients trust), ca-key.pem, server.pem
(server certificate followed by the CA certificate) and server-key.pem. Existing files are reused
as long as the server certificate is still valid for a day and was issued by the CA in ca.pem.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"


@dataclass(frozen=True)
class CertPaths:
    ca_file: Path
    ca_key_file: Path
    cert_file: Path
    key_file: Path


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _usable(paths: CertPaths) -> bool:
    if not all(p.exists() for p in (paths.ca_file, paths.ca_key_file, paths.cert_file, paths.key_file)):
        return False
    try:
        ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
        server = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
        serialization.load_pem_private_key(paths.key_file.read_bytes(), password=None)
        server.verify_directly_issued_by(ca)
    except Exception:
        return False
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    return server.not_valid_after_utc > soon and ca.not_valid_after_utc > soon


def ensure_certs(state_dir: str | os.PathLike) -> CertPaths:
    """Create (or reuse) the CA and the server certificate in state_dir and return their paths."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(state / CA_FILE, state / CA_KEY_FILE, state / SERVER_CERT_FILE, state / SERVER_KEY_FILE)
    if _usable(paths):
        return paths

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenant emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tenant emulator local CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=397))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_private(paths.ca_key_file, _key_pem(ca_key))
    _write_private(paths.key_file, _key_pem(key))
    _write_public(paths.cert_file, cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    _write_public(paths.ca_file, ca_pem)
    return paths
