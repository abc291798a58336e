"""The emulator's CA and server certificate."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading

from cryptography import x509

from emulator.certs import ensure_certs


def san(path) -> x509.SubjectAlternativeName:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_server_certificate_names_loopback_and_localhost(tmp_path):
    paths = ensure_certs(tmp_path)
    names = san(paths.cert_file)
    assert set(names.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1"),
                                                              ipaddress.ip_address("::1")}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert stat.S_IMODE(paths.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.ca_key_file.stat().st_mode) == 0o600


def test_certificates_are_reused_when_present(tmp_path):
    first = ensure_certs(tmp_path)
    ca, cert = first.ca_file.read_bytes(), first.cert_file.read_bytes()
    second = ensure_certs(tmp_path)
    assert second.ca_file.read_bytes() == ca
    assert second.cert_file.read_bytes() == cert


def test_extra_names_reissue_the_server_certificate_from_the_same_ca(tmp_path):
    first = ensure_certs(tmp_path)
    ca, cert = first.ca_file.read_bytes(), first.cert_file.read_bytes()
    paths = ensure_certs(tmp_path, extra_names=["emulator", "10.0.0.5"])
    assert paths.ca_file.read_bytes() == ca
    assert paths.cert_file.read_bytes() != cert
    names = san(paths.cert_file)
    assert "emulator" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.0.0.5") in names.get_values_for_type(x509.IPAddress)


def test_a_client_trusting_ca_pem_verifies_the_server_on_127_0_0_1(tmp_path):
    paths = ensure_certs(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(paths.cert_file, paths.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(paths.ca_file))
    with socket.create_connection(("127.0.0.1", port)) as raw, client_ctx.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls.send(b"x")
    thread.join(5)
    listener.close()
