"""The domain endpoint read from the Airflow connection: LDAPS by default, StartTLS on request."""

from __future__ import annotations

import pytest

from domain_sync.domain import endpoint_from_connection


class Conn:
    def __init__(self, port=None, **extra):
        self.host, self.port, self.login, self.password = "dc1.corp.example.test", port, "CN=admin", "secret"
        self.extra_dejson = {"base_dn": "DC=corp,DC=example,DC=test", **extra}


def test_ldaps_on_636_by_default():
    endpoint = endpoint_from_connection(Conn(), "ldap_domain")
    assert (endpoint.start_tls, endpoint.port, endpoint.address) == (False, 636, "ldaps://dc1.corp.example.test:636")


@pytest.mark.parametrize("value", [True, "true", "True", "TRUE"])
def test_start_tls_uses_389(value):
    endpoint = endpoint_from_connection(Conn(start_tls=value), "ldap_domain")
    assert (endpoint.start_tls, endpoint.port) == (True, 389)


@pytest.mark.parametrize("value", [False, "false", "False", None])
def test_start_tls_written_as_false_text_stays_ldaps(value):
    assert endpoint_from_connection(Conn(start_tls=value), "ldap_domain").start_tls is False


def test_validate_tls_false_as_text_turns_validation_off():
    assert endpoint_from_connection(Conn(validate_tls="false"), "ldap_domain").validate_tls is False
    assert endpoint_from_connection(Conn(), "ldap_domain").validate_tls is True
