"""How a task runs a stage: by its name in pipeline.STAGES, recording its outcome in the run's summary."""

from __future__ import annotations

import pytest

from domain_sync import pipeline
from domain_sync.config import Settings
from domain_sync.errors import PermanentError
from domain_sync.runs import RunFolder


def test_an_unknown_stage_is_a_permanent_error_the_retry_rule_fails_at_once(tmp_path):
    from airflow.sdk import RetryAction

    settings = Settings(data_dir=str(tmp_path))
    with pytest.raises(PermanentError, match="unknown stage 'extract_user'") as raised:
        pipeline.run_stage("extract_user", "r1", {}, settings)
    assert pipeline.retry_policy().evaluate(raised.value, 1, 3).action == RetryAction.FAIL
    summary = RunFolder(settings.runs_dir, "r1").summary()
    assert summary["extract_user"]["failed"].startswith("UnknownName: unknown stage")


def test_an_unknown_frame_is_a_permanent_error(tmp_path):
    with pytest.raises(PermanentError, match="unknown frame 'user'"):
        RunFolder(tmp_path, "r1").staged("user")
