"""The storage primitives every worker shares: create-if-absent, the compare-and-append log, documents, and
on them the state commit (exactly one of two racing commits wins; a crash before the pointer moves leaves
the old state) and the state lock. Each test runs on a local data folder and, marked `azurite`, on Azure
Blob Storage (Azurite) through abfs://."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from domain_sync import storage
from domain_sync.state import SNAPSHOT_FILES, StateChanged, StateLocked, StateStore
from domain_sync.storage import (
    JsonArray,
    JsonLog,
    LogConflict,
    create_exclusive,
    location,
    read_document,
    read_json,
    read_parquet,
    update_document,
    write_json_atomic,
)

WORKERS = 8


@pytest.fixture(params=["file", pytest.param("abfs", marks=pytest.mark.azurite)])
def root(request, tmp_path):
    """The data folder: a local one, or a container in Azurite."""
    if request.param == "file":
        return location(f"file://{tmp_path}/data")
    url = request.getfixturevalue("abfs_data")
    return location(url, "data_store")


def race(count: int, action):
    """Run action(i) for i in range(count) at once (a barrier lines the threads up); their results or exceptions."""
    barrier = threading.Barrier(count)

    def one(i):
        barrier.wait()
        try:
            return action(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def snapshot_dir(root, name: str = "snap", users=("a",)):
    folder = root / name
    for file_name in SNAPSHOT_FILES:
        with storage.replacing(folder / file_name) as handle:
            pd.DataFrame({"id": list(users)}).to_parquet(handle, index=False)
    return folder


def test_a_local_path_and_a_file_url_are_the_same_folder(tmp_path):
    assert location(f"file://{tmp_path}") == location(str(tmp_path)) == tmp_path


def test_a_store_without_create_if_absent_is_refused():
    with pytest.raises(storage.StorageUnsupported, match="ftp://"):
        location("ftp://host/folder")


def test_of_many_creating_one_object_exactly_one_does(root):
    results = race(WORKERS, lambda i: create_exclusive(root / "once.json", json.dumps({"by": i}).encode()))
    assert results.count(True) == 1 and results.count(False) == WORKERS - 1
    assert read_json(root / "once.json") == {"by": results.index(True)}


def test_the_log_appends_after_the_entry_read_and_refuses_a_second_append_there(root):
    log = JsonLog(root / "log")
    assert log.latest() == (0, None)
    assert log.append(0, {"n": 1}) == 1
    with pytest.raises(LogConflict):
        log.append(0, {"n": "other"})
    assert log.append(1, {"n": 2}) == 2
    assert log.latest() == (2, {"n": 2})


def test_racing_appends_on_one_entry_leave_exactly_one(root):
    log = JsonLog(root / "log")
    log.append(0, {"n": 0})
    results = race(WORKERS, lambda i: log.append(1, {"by": i}))
    won = [r for r in results if r == 2]
    assert len(won) == 1 and all(isinstance(r, LogConflict) for r in results if r != 2)
    assert log.latest() == (2, {"by": results.index(2)})


def test_an_empty_log_reads_the_single_file_it_replaces(root):
    write_json_atomic(root / "current.json", {"version": "old"})
    log = JsonLog(root / "pointer", legacy=root / "current.json")
    assert log.latest() == (0, {"version": "old"})
    log.append(0, {"version": "new"})
    assert log.latest() == (1, {"version": "new"})


def test_old_entries_go_once_they_are_many_and_old(tmp_path, monkeypatch):
    log = JsonLog(location(str(tmp_path / "log")))
    for seq in range(storage.LOG_KEEP + 5):
        log.append(seq, {"n": seq})
    assert len(list((tmp_path / "log").iterdir())) == storage.LOG_KEEP + 5  # young: kept
    monkeypatch.setattr(storage, "LOG_PRUNE_AGE", -1.0)
    log.append(storage.LOG_KEEP + 5, {"n": "last"})
    assert len(list((tmp_path / "log").iterdir())) == storage.LOG_KEEP
    assert log.latest() == (storage.LOG_KEEP + 6, {"n": "last"})


def test_concurrent_document_updates_lose_none(root):
    path = root / "alerting" / "counts.json"
    race(WORKERS, lambda i: update_document(path, lambda doc: (doc or {}) | {str(i): i}))
    assert read_document(path) == {str(i): i for i in range(WORKERS)}


def test_two_commits_racing_on_one_version_exactly_one_wins(root, monkeypatch):
    state = StateStore(root / "state")
    base = state.commit(snapshot_dir(root, "base", ["a"]), {"users": "link-0"})
    snapshots = [snapshot_dir(root, f"run{i}", [f"u{i}"]) for i in range(2)]
    barrier = threading.Barrier(2)
    move = StateStore._move_pointer

    def move_together(self, seq, entry):  # both have checked the version and written theirs: now the pointer
        barrier.wait()
        move(self, seq, entry)

    monkeypatch.setattr(StateStore, "_move_pointer", move_together)
    results = race(2, lambda i: StateStore(root / "state").commit(snapshots[i], {"users": f"link-{i + 1}"},
                                                                    run_id=f"run{i}", read_version=base))
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], StateChanged)
    winner = results.index(won[0])
    assert state.version() == won[0]
    assert state.delta_links()["users"]["link"] == f"link-{winner + 1}"
    assert list(read_parquet(state.snapshot("users"))["id"]) == [f"u{winner}"]
    versions = sorted(p.name for p in storage.children(root / "state") if p.name.startswith("v-"))
    assert versions == [won[0]], "the loser's version and the old one are gone"


def test_a_crash_before_the_pointer_moves_leaves_the_old_state(root, monkeypatch):
    state = StateStore(root / "state")
    old = state.commit(snapshot_dir(root, "base", ["a"]), {"users": "link-0"})

    def crash(self, seq, entry):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(StateStore, "_move_pointer", crash)
    with pytest.raises(RuntimeError):
        state.commit(snapshot_dir(root, "next", ["b"]), {"users": "link-1"}, read_version=old)
    assert state.version() == old and state.missing_files() == []
    assert list(read_parquet(state.snapshot("users"))["id"]) == ["a"]
    assert state.delta_links()["users"]["link"] == "link-0"
    monkeypatch.undo()
    new = state.commit(snapshot_dir(root, "next", ["b"]), {"users": "link-1"}, read_version=old)
    assert state.version() == new and list(read_parquet(state.snapshot("users"))["id"]) == ["b"]


def test_a_commit_on_a_version_no_longer_current_is_refused(root):
    state = StateStore(root / "state")
    first = state.commit(snapshot_dir(root), {"users": "l1"})
    state.commit(snapshot_dir(root), {"users": "l2"}, read_version=first)
    with pytest.raises(StateChanged, match="another run committed since"):
        state.commit(snapshot_dir(root), {"users": "l3"}, run_id="late", read_version=first)


def test_of_runs_taking_the_lock_at_once_exactly_one_holds_it(root):
    results = race(WORKERS, lambda i: StateStore(root / "state").acquire_lock(f"run{i}"))
    holders = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    assert len(holders) == 1
    assert all(isinstance(r, StateLocked) for i, r in enumerate(results) if i != holders[0])
    state = StateStore(root / "state")
    assert state.lock_holder()["run_id"] == f"run{holders[0]}"
    assert not state.release_lock("run-other") and state.release_lock(f"run{holders[0]}")
    assert state.lock_holder() is None


def test_a_stale_lock_is_taken_over_once(root):
    state = StateStore(root / "state")
    long_ago = datetime.now(UTC) - timedelta(hours=13)
    state.acquire_lock("old", now=long_ago)
    results = race(WORKERS, lambda i: StateStore(root / "state").acquire_lock(f"run{i}", stale_after_hours=12))
    took = [r for r in results if isinstance(r, dict)]
    assert len(took) == 1 and took[0]["run_id"] == "old" and "hours ago" in took[0]["stale"]
    assert sum(isinstance(r, StateLocked) for r in results) == WORKERS - 1


def test_the_state_of_the_single_file_layout_is_read_and_carried_on(tmp_path):
    root = location(str(tmp_path))
    folder = tmp_path / "state" / "v-20260101T000000-abcdef12"
    snapshot_dir(root, "state/v-20260101T000000-abcdef12", ["a"])
    write_json_atomic(folder / "delta_links.json", {"users": {"link": "old-link", "saved_at": "2026-01-01T00:00:00+00:00"}})
    write_json_atomic(tmp_path / "state" / "current.json", {"version": folder.name})
    write_json_atomic(tmp_path / "state" / "lock.json", {"run_id": "old-run", "acquired_at": datetime.now(UTC).isoformat()})
    state = StateStore(root / "state")
    assert state.version() == folder.name and state.delta_links()["users"]["link"] == "old-link"
    assert state.lock_holder()["run_id"] == "old-run"
    assert state.release_lock("old-run") and state.lock_holder() is None
    new = state.commit(snapshot_dir(root, "snap", ["b"]), {"groups": "g"}, read_version=folder.name)
    assert state.version() == new and not (tmp_path / "state" / "current.json").exists()
    assert set(state.delta_links()) == {"users", "groups"} and not folder.exists()


@pytest.mark.azurite
def test_on_azure_blob_the_store_itself_refuses_the_second_create(abfs_data, monkeypatch):
    """No exists-then-write: with the file system's existence check blinded, the upload is still refused
    (If-None-Match: *), so the condition holds between machines."""
    root = location(abfs_data, "data_store")
    assert create_exclusive(root / "x.json", b"1")
    monkeypatch.setattr(type(root.fs), "exists", lambda self, path, **kw: False)
    monkeypatch.setattr(type(root.fs), "_exists", lambda self, path, **kw: _false(), raising=False)
    assert not create_exclusive(root / "x.json", b"2")
    assert read_json(root / "x.json") == 1


async def _false():
    return False


def test_stages_of_a_run_ending_at_once_each_keep_their_summary_section(root):
    from domain_sync.runs import RunFolder

    results = race(WORKERS, lambda i: RunFolder(root / "runs", "r1").update_summary(f"stage{i}", {"n": i}))
    assert not [r for r in results if isinstance(r, Exception)]
    summary = RunFolder(root / "runs", "r1").summary()
    assert summary == {"run_id": "r1", **{f"stage{i}": {"n": i} for i in range(WORKERS)}}


def test_the_two_extracts_each_keep_their_delta_link(root):
    from domain_sync.runs import RunFolder

    race(2, lambda i: write_json_atomic(RunFolder(root / "runs", "r1").delta_link(("users", "groups")[i]),
                                        {"link": f"link-{i}"}))
    assert RunFolder(root / "runs", "r1").delta_links() == {"users": {"link": "link-0"}, "groups": {"link": "link-1"}}


@pytest.mark.parametrize("n", [0, 1, JsonArray.CHUNK, JsonArray.CHUNK + 1, 2 * JsonArray.CHUNK + 3])
def test_an_array_written_element_by_element_reads_back_as_the_whole_object(root, n):
    items = [{"op": "create", "anchor": f"a{i}", "values": {"cn": [f"Zoë \"{i}\""]}} for i in range(n)]
    head = {"counts": {"create": n}, "digest": "d", "status": "clear"}
    write_json_atomic(root / "plan.json", head | {"changes": JsonArray(iter(items)), "after": [1]}, compact=True)
    assert read_json(root / "plan.json") == head | {"changes": items, "after": [1]}


def test_an_array_to_write_element_by_element_anywhere_else_is_refused(tmp_path):
    for data, compact in (({"changes": JsonArray([1])}, False), ({"plan": {"changes": JsonArray([1])}}, True)):
        with pytest.raises(TypeError, match="top-level object of a compact"):
            write_json_atomic(tmp_path / "plan.json", data, compact=compact)
    assert not (tmp_path / "plan.json").exists()
