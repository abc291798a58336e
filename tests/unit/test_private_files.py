"""Files under the data folder are 0600 in 0700 folders, whatever the umask: JSON hand-offs, log entries
(the state lock and pointer, documents), Parquet and text files stages write themselves (made private when
the stage's outcome is recorded), the committed state's copies and the alerts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from domain_sync.alerts import raise_alert, read_alerts
from domain_sync.config import Settings
from domain_sync.runs import RunFolder
from domain_sync.state import SNAPSHOT_FILES, StateStore
from domain_sync.storage import JsonLog, make_private, private_dir, update_document, write_json_atomic


@pytest.fixture(autouse=True)
def permissive_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """{relative path: mode} of root and everything below it ("." for root)."""
    out = {".": mode(root)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = mode(path)
    return out


def assert_private(root: Path) -> None:
    wrong = {name: oct(m) for name, m in modes_under(root).items()
             if m != (0o700 if (root / name).is_dir() else 0o600)}
    assert wrong == {}


def test_json_is_written_0600_in_new_0700_folders(tmp_path):
    write_json_atomic(tmp_path / "data" / "a" / "b" / "x.json", {"k": 1})
    assert_private(tmp_path / "data")


def test_log_entries_and_documents_are_0600(tmp_path):
    StateStore(tmp_path / "data" / "state").acquire_lock("r1")
    JsonLog(tmp_path / "data" / "state" / "pointer").append(0, {"version": "v"})
    update_document(tmp_path / "data" / "alerting" / "doc.json", lambda current: {"n": 1})
    assert_private(tmp_path / "data")


def test_files_a_stage_writes_itself_are_made_private_when_the_stage_is_recorded(tmp_path):
    data = tmp_path / "data"
    run = RunFolder(data / "runs", "manual__1")
    pd.DataFrame({"id": ["a"]}).to_parquet(run.records("users"), index=False)
    run.plan_preview.write_text("plan\n", encoding="utf-8")
    assert mode(run.records("users")) == 0o644  # as the umask has it, inside 0700 folders
    assert mode(run.records("users").parent) == 0o700 and mode(data) == 0o700
    run.update_summary("transform", {"ok": True})
    assert_private(data)


def test_an_existing_data_folder_is_tightened(tmp_path):
    data = tmp_path / "data"
    (data / "runs").mkdir(parents=True)
    os.chmod(data, 0o755)
    os.chmod(data / "runs", 0o755)
    write_json_atomic(RunFolder(data / "runs", "r").delta_link("users"), {})
    assert_private(data)


def test_private_dir_sets_nothing_outside_its_root(tmp_path):
    os.chmod(tmp_path, 0o755)
    (tmp_path / "other").mkdir(mode=0o755)
    private_dir(tmp_path / "other" / "new", root=tmp_path / "data")
    assert (mode(tmp_path), mode(tmp_path / "other"), mode(tmp_path / "other" / "new")) == (0o755, 0o755, 0o700)


def test_folders_above_the_data_folder_keep_their_mode(tmp_path):
    os.chmod(tmp_path, 0o755)
    RunFolder(tmp_path / "data" / "runs", "r").update_summary("x", {})
    assert mode(tmp_path) == 0o755
    assert_private(tmp_path / "data")


def test_committed_state_copies_are_0600_whatever_the_source(tmp_path):
    data = tmp_path / "data"
    source = tmp_path / "snapshot"
    source.mkdir()
    for name in SNAPSHOT_FILES:
        pd.DataFrame({"id": ["a"]}).to_parquet(source / name, index=False)
        os.chmod(source / name, 0o644)
    state = StateStore(data / "state")
    state.commit(source, {"users": "https://graph.example/delta?token=1"})
    state.commit(source, {"users": "https://graph.example/delta?token=2"})
    assert_private(data)
    assert sorted(p.name for p in state.current().iterdir()) == sorted([*SNAPSHOT_FILES, "delta_links.json"])


def test_alerts_are_0600_even_in_a_folder_that_was_not(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "data"))
    raise_alert(settings, "test", "first")
    os.chmod(tmp_path / "data" / "alerts", 0o755)
    raise_alert(settings, "test", "second")
    assert_private(tmp_path / "data")
    assert [a["message"] for a in read_alerts(settings)] == ["first", "second"]


def test_make_private_leaves_symbolic_links_alone(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "link").symlink_to(outside)
    make_private(tmp_path / "data")
    assert mode(outside) == 0o644
