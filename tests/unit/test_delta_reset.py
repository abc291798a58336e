"""The full resync's forget_delta_links: the saved links go (under the state lock), the snapshot stays."""

from __future__ import annotations

from domain_sync.context import StageContext
from domain_sync.delta_reset import forget_delta_links
from domain_sync.state import SNAPSHOT_FILES, StateStore


def committed_state(settings, tmp_path) -> StateStore:
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in SNAPSHOT_FILES:
        (snapshot / name).write_bytes(b"parquet")
    state = StateStore(settings.state_dir)
    state.commit(snapshot, {"users": "https://graph/users?deltatoken=1", "groups": "https://graph/groups?deltatoken=2"})
    return state


def test_forgetting_removes_the_links_and_keeps_the_snapshot(tmp_path, settings):
    state = committed_state(settings, tmp_path)
    ctx = StageContext.offline(settings, "full-1", forget_delta_links=True)
    assert forget_delta_links(ctx) == {"forgotten": ["groups", "users"]}
    assert state.delta_links() == {} and state.has_snapshot()
    assert state.lock_holder()["run_id"] == "full-1"  # taken for the run, as its extract takes it


def test_without_the_param_or_in_a_dry_run_the_links_stay(tmp_path, settings):
    state = committed_state(settings, tmp_path)
    forget_delta_links(StageContext.offline(settings, "full-1"))
    forget_delta_links(StageContext.offline(settings, "full-2", forget_delta_links=True, dry_run=True))
    assert set(state.delta_links()) == {"users", "groups"} and state.lock_holder() is None


def test_a_state_without_a_commit_has_no_links_to_forget(tmp_path):
    state = StateStore(tmp_path / "state")
    assert state.forget_delta_links() == [] and state.current() is None
