"""docs/settings.md is the settings reference generated from the source, and every setting is documented."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from domain_sync.config import Settings
from domain_sync.ops_settings import OpsSettings
from domain_sync.settings_doc import UndocumentedSetting, field_docs, render

SETTINGS_MD = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_docs_settings_md_is_the_generated_reference():
    assert SETTINGS_MD.read_text() == render(), (
        "docs/settings.md is out of date: run `python -m domain_sync.settings_doc > docs/settings.md`")


@pytest.mark.parametrize("cls", [Settings, OpsSettings])
def test_every_field_has_a_meaning_and_a_row(cls):
    documented = dict(field_docs(cls))
    assert list(documented) == [f.name for f in fields(cls)]
    text = render()
    for name, meaning in documented.items():
        assert meaning.strip(), name
        assert f"| `DOMAIN_SYNC_{name.upper()}` |" in text, name


@dataclass(frozen=True)
class _Undocumented:
    # Documented.
    first: int = 1
    second: str = "x"


def test_a_field_without_a_comment_above_it_stops_the_generation():
    with pytest.raises(UndocumentedSetting, match="second.*DOMAIN_SYNC_SECOND"):
        field_docs(_Undocumented)


def test_the_meaning_is_the_whole_comment_block_above_the_field():
    @dataclass
    class Two:
        # First line,
        # second line.
        value: int = 0

    assert field_docs(Two) == [("value", "First line, second line.")]


def test_the_generated_text_shows_no_machine_path():
    """Computed defaults (the data folder, the bundled mapping file) are described, never one machine's value."""
    text = render()
    assert str(Path(Settings().mapping_file)) not in text and str(Settings().data_dir) not in text


def test_a_computed_default_nobody_described_stops_the_generation(monkeypatch):
    from dataclasses import field

    from domain_sync import settings_doc

    @dataclass
    class Computed:
        # Hosts, read when the settings are.
        hosts: list = field(default_factory=list)

    monkeypatch.setattr(settings_doc, "SECTIONS", ((Computed, "Computed", "A class with a computed default."),))
    with pytest.raises(UndocumentedSetting, match="hosts: its default is computed"):
        render()
