"""Settings are range-checked: a bad value is a settings error naming the variable."""

import pytest

from domain_sync.config import Settings, SettingsError
from domain_sync.errors import PermanentError


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("MAX_DELETE_SHARE", "1.5", "between 0 and 1"),
    ("MAX_QUARANTINE_SHARE", "-0.1", "between 0 and 1"),
    ("MIN_FULL_READ_SHARE", "nan", "finite"),
    ("MAX_DELETES", "-1", "negative"),
    ("APPLY_CONNECTIONS", "0", "above 0"),
    ("LDAP_TIMEOUT_SECONDS", "inf", "finite"),
    ("RETRY_ATTEMPTS", "ten", "not a valid int"),
    ("INITIAL_PASSWORD", "secret", "not one of"),
    ("LDAP_TRANSIENT_CODES", "51,busy", "result codes"),
])
def test_a_bad_setting_is_a_permanent_settings_error_naming_the_variable(name, raw, message):
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_env({f"DOMAIN_SYNC_{name}": raw})
    assert f"DOMAIN_SYNC_{name}" in str(caught.value)
    assert isinstance(caught.value, PermanentError)


def test_the_defaults_pass_and_ldap_code_80_is_not_retried_by_default():
    settings = Settings()
    assert settings.transient_ldap_codes() == {51, 52}
    assert Settings.from_env({"DOMAIN_SYNC_LDAP_TRANSIENT_CODES": "51,52,80"}).transient_ldap_codes() == {51, 52, 80}


@pytest.mark.parametrize("env", [
    {"DOMAIN_SYNC_OWNER_ATTRIBUTE": ""},
    {"DOMAIN_SYNC_OWNER_ATTRIBUTE": "  "},
    {"DOMAIN_SYNC_OWNER_ATTRIBUTE": "ms-ds-consistencyguid"},
    {"DOMAIN_SYNC_OWNER_ATTRIBUTE": "adminDescription", "DOMAIN_SYNC_ANCHOR_ATTRIBUTE": "adminDescription"},
])
def test_the_owner_attribute_must_be_named_and_not_the_anchor(env):
    with pytest.raises(SettingsError, match="DOMAIN_SYNC_OWNER_ATTRIBUTE"):
        Settings.from_env(env)
    assert Settings.from_env({"DOMAIN_SYNC_OWNER_ATTRIBUTE": "extensionAttribute15"}).owner_attribute


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("MAX_CREATES", "-1", "negative"), ("MAX_CREATE_SHARE", "1.2", "between 0 and 1"),
    ("CREATE_SHARE_MIN_OBJECTS", "-3", "negative"),
])
def test_create_guard_settings_are_range_checked(name, raw, message):
    with pytest.raises(SettingsError, match=f"DOMAIN_SYNC_{name}.*{message}"):
        Settings.from_env({f"DOMAIN_SYNC_{name}": raw})
