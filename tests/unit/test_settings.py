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
