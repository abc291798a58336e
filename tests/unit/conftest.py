"""Fixtures the pure tests share."""

from __future__ import annotations

import pytest

from domain_sync.config import Settings


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """The sync's settings from the environment, with a data folder of the test's own (set in the environment
    too, so that code reading Settings.from_env() finds the same folder)."""
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    return Settings.from_env()
