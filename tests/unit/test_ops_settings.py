"""Operations settings: schedules and alerting from DOMAIN_SYNC_* variables, range-checked."""

from __future__ import annotations

import pytest

from domain_sync.config import SettingsError
from domain_sync.ops_settings import OpsSettings


def test_defaults_sync_every_five_minutes_and_alert_after_thirty():
    ops = OpsSettings.from_env({})
    assert ops.sync_schedule == "*/5 * * * *" and ops.freshness_minutes == 30 and ops.channels() == ["smtp"]


def test_the_sync_schedule_is_a_setting():
    assert OpsSettings.from_env({"DOMAIN_SYNC_SYNC_SCHEDULE": "*/15 * * * *"}).sync_schedule == "*/15 * * * *"


@pytest.mark.parametrize(("name", "value"), [("FRESHNESS_MINUTES", "0"), ("OBJECT_FAILURE_RUNS", "0"),
                                             ("DRIFT_ON_SYNC_EVENTS", "maybe"), ("FRESHNESS_MINUTES", "soon")])
def test_bad_values_are_settings_errors(name, value):
    with pytest.raises(SettingsError, match=f"DOMAIN_SYNC_{name}"):
        OpsSettings.from_env({f"DOMAIN_SYNC_{name}": value})
