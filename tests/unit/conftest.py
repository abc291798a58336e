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


@pytest.fixture(autouse=True)
def _no_dc_remembered_as_paging_only():
    """Each test starts with no DC remembered as refusing unpaged answers (domain.search_entries keeps that per
    process, by host and port): a fake DC of a later test may get a port an earlier one had."""
    from domain_sync import domain

    domain._PAGES_ONLY_DCS.clear()
    yield
    domain._PAGES_ONLY_DCS.clear()
