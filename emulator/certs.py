"""A private CA and a server certificate for the emulator's HTTPS listeners.

Files in the state directory: ca.pem (the CA certificate clients trust), ca-key.pem, server.pem
(server certificate followed by the CA certificate) and server-key.pem. The server certificate names
127.0.0.1, ::1 and localhost, plus any extra names asked for. Existing files are reused: the CA as
long as it is valid, the server certificate as long as it is valid, was issued by that CA and names
everything asked for; otherwise a new server certificate is issued by the same CA, so clients that
trust ca.pem keep trusting the emulator.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
DEFAULT_NAMES = ("127.0.0.1", "::1", "localhost")


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


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            out.append(x509.DNSName(name.lower()))
    return out


def _soon() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def _load_ca(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or ca.not_valid_after_utc <= _soon():
        return None
    if ca.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    return ca, key


def _server_usable(paths: CertPaths, ca: x509.Certificate, wanted: list[x509.GeneralName]) -> bool:
    try:
        server = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
        serialization.load_pem_private_key(paths.key_file.read_bytes(), password=None)
        server.verify_directly_issued_by(ca)
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return server.not_valid_after_utc > _soon() and all(name in san for name in wanted)


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenant emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tenant emulator local CA"),
        ]
    )
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ca_cert, ca_key


def _new_server(
    now: dt.datetime, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[x509.GeneralName]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
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
    return cert, key


def ensure_certs(state_dir: str | os.PathLike, extra_names: Iterable[str] = ()) -> CertPaths:
    """Create (or reuse) the CA and the server certificate in state_dir and return their paths.

    extra_names: further DNS names or IP addresses the server certificate must name.
    """
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(state / CA_FILE, state / CA_KEY_FILE, state / SERVER_CERT_FILE, state / SERVER_KEY_FILE)
    names: list[str] = []
    for name in (*DEFAULT_NAMES, *extra_names):
        if name and name not in names:
            names.append(name)
    wanted = _general_names(names)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    loaded = _load_ca(paths)
    if loaded is not None and _server_usable(paths, loaded[0], wanted):
        return paths
    if loaded is None:
        ca, ca_key = _new_ca(now)
        _write_private(paths.ca_key_file, _key_pem(ca_key))
        _write_public(paths.ca_file, ca.public_bytes(serialization.Encoding.PEM))
    else:
        ca, ca_key = loaded
    cert, key = _new_server(now, ca, ca_key, wanted)
    _write_private(paths.key_file, _key_pem(key))
    _write_public(
        paths.cert_file,
        cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM),
    )
    return paths
