"""Safe writes without a domain: the membership guard, plan digests and approval, lost state, the
state lock and the state version a run must keep to."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from domain_sync.alerts import read_alerts
from domain_sync.config import Settings, SettingsError
from domain_sync.context import StageContext
from domain_sync.errors import PermanentError, TransientError
from domain_sync.plan.guards import (
    ApprovalInvalid,
    OwnershipSigns,
    approval_status,
    approved_digest,
    creation_guard,
    guard_reasons,
    member_removals,
    membership_guard,
    plan_digest,
    search_base_guard,
)
from domain_sync.plan.stage import blocked_message, lost_state_reasons, preview_header
from domain_sync.records import Change, ChangeSet, Op
from domain_sync.runs import RunFolder, write_json_atomic
from domain_sync.state import (
    StateChanged,
    StateLocked,
    StateLost,
    StateStore,
    check_state,
    commit_run,
    hold_state,
    main,
    release_run_lock,
)

C = "OU=Synced,DC=corp,DC=example,DC=test"
G1, G2 = "99999999-9999-9999-9999-999999999991", "99999999-9999-9999-9999-999999999992"


def member_dn(n: int) -> str:
    return f"CN=user {n},{C}"


def removal(group: str, members: range | list[int]) -> Change:
    return Change(Op.REMOVE_MEMBERS, "group", group, f"CN={group},{C}", members=[member_dn(n) for n in members])


def change_set(*changes: Change) -> ChangeSet:
    return ChangeSet(changes=list(changes), counts={})


LIMITS = Settings(max_member_removals=1000, max_member_removal_share=0.5, member_removal_share_min_members=20)


# ---- 1. memberships are part of the blast radius

def test_removing_more_than_the_share_of_a_groups_members_blocks_the_plan():
    plan = change_set(removal(G1, range(11)))
    assert membership_guard(plan, {G1: 20, G2: 1000}, LIMITS) == [
        f"11 of the 20 members of group {G1} (55%) would be removed, more than the limit of 50% "
        f"(setting max_member_removal_share)"]
    assert membership_guard(change_set(removal(G1, range(10))), {G1: 20, G2: 1000}, LIMITS) == []
    # Too small a group to judge by share.
    assert membership_guard(change_set(removal(G1, range(19))), {G1: 19, G2: 1000}, LIMITS) == []


def test_member_removals_are_limited_in_total_by_count_and_share():
    many = change_set(*(removal(f"group-{g}", range(g * 100, g * 100 + 100)) for g in range(11)))
    members = {f"group-{g}": 1000 for g in range(11)}
    assert membership_guard(many, members, LIMITS) == [
        "1100 memberships would be removed, more than the limit of 1000 (setting max_member_removals)"]
    # Every group loses 40%, under the per-group limit; all together over a 30% share.
    spread = change_set(*(removal(f"g{g}", range(g * 10, g * 10 + 4)) for g in range(10)))
    assert membership_guard(spread, {f"g{g}": 10 for g in range(10)}, Settings(max_member_removal_share=0.3)) == [
        "40 of the 100 memberships of synced groups (40%) would be removed, more than the limit of 30% "
        "(setting max_member_removal_share)"]


def test_members_the_plan_deletes_or_disables_count_as_those_deletes_not_as_removals():
    gone = [Change(Op.DELETE, "user", f"u{n}", member_dn(n)) for n in range(6)]
    gone += [Change(Op.DISABLE, "user", f"u{n}", member_dn(n).upper()) for n in range(6, 9)]
    plan = change_set(removal(G1, range(12)), *gone)
    assert member_removals(plan) == {G1: 3}
    assert membership_guard(plan, {G1: 20}, LIMITS) == []


def test_members_named_by_guid_that_the_plan_disables_count_as_that_disable():
    guid = "aaaaaaaa-0000-0000-0000-00000000000a"
    plan = change_set(Change(Op.REMOVE_MEMBERS, "group", G1, f"CN=g,{C}", members=[f"<GUID={guid.upper()}>", member_dn(1)]),
                      Change(Op.DISABLE, "user", "u0", member_dn(0), guid=guid))
    assert member_removals(plan) == {G1: 1}


def creates(n: int) -> ChangeSet:
    return change_set(*(Change(Op.CREATE, "user", f"u{i}", member_dn(i)) for i in range(n)))


def signs(unmarked=0, observed=0, committed=0, outside=0) -> OwnershipSigns:
    return OwnershipSigns(unmarked, observed, committed, "mS-DS-ConsistencyGuid", "extensionName", C, outside)


CREATE_LIMITS = Settings(max_creates=100, max_create_share=0.5, create_share_min_objects=20)


def test_many_creates_while_anchored_objects_lack_our_marker_block_the_plan_naming_the_owner_settings():
    reasons = creation_guard(creates(30), signs(unmarked=30), CREATE_LIMITS)
    assert len(reasons) == 1 and reasons[0].startswith("30 of the 30 tenant objects in the domain (100%) would be "
                                                       "created")
    assert "DOMAIN_SYNC_OWNER_MARKER" in reasons[0] and "30 objects under" in reasons[0]
    assert creation_guard(creates(101), signs(unmarked=1, observed=500), CREATE_LIMITS)[0].startswith(
        "101 objects would be created, more than the limit of 100 (setting max_creates)")
    # Under the limits, or too few to judge by share: clear.
    assert creation_guard(creates(10), signs(unmarked=30, observed=20), CREATE_LIMITS) == []
    assert creation_guard(creates(19), signs(unmarked=30), CREATE_LIMITS) == []


def test_many_creates_while_the_committed_state_holds_objects_and_none_is_observed_block_the_plan():
    reasons = creation_guard(creates(25), signs(committed=25), CREATE_LIMITS)
    assert len(reasons) == 1 and "DOMAIN_SYNC_SEARCH_BASE" in reasons[0] and "holds 25 tenant objects" in reasons[0]
    assert guard_reasons(creates(25), {}, {}, CREATE_LIMITS, signs(committed=25)) == reasons


def test_creates_are_not_judged_while_the_sync_sees_its_own_objects():
    # A first sync (nothing committed, nothing unmarked) and a sync that finds its objects create freely.
    assert creation_guard(creates(5000), signs(), CREATE_LIMITS) == []
    assert creation_guard(creates(5000), signs(observed=10, committed=10), CREATE_LIMITS) == []


def test_more_of_our_objects_outside_the_search_base_than_inside_block_the_plan_naming_the_setting():
    # A changed search base: every object is outside, nothing is created (all held), and still the plan stops.
    reasons = guard_reasons(creates(0), {}, {}, CREATE_LIMITS, signs(outside=4, committed=4))
    assert len(reasons) == 1 and reasons[0].startswith("4 objects with this sync's marker are outside the search base")
    assert "DOMAIN_SYNC_SEARCH_BASE" in reasons[0] and "DOMAIN_SYNC_CONTAINER" in reasons[0]
    assert search_base_guard(signs(outside=3, observed=2)) != []
    # One object moved out by hand among many inside (or as many inside as out): held and reported, no stop.
    assert guard_reasons(creates(0), {}, {}, CREATE_LIMITS, signs(outside=1, observed=40, committed=41)) == []
    assert search_base_guard(signs(outside=2, observed=2)) == [] and search_base_guard(signs()) == []


def test_the_guard_reports_deletes_and_member_removals_together():
    plan = change_set(removal(G1, range(15)), *(Change(Op.DELETE, "user", f"x{n}", f"CN=x{n},{C}") for n in range(3)))
    reasons = guard_reasons(plan, {"user": 4, "group": 1}, {G1: 20}, Settings(max_deletes=2))
    assert reasons[0].startswith("3 users would be deleted or disabled") and "15 of the 20 members" in reasons[1]


@pytest.mark.parametrize("name, value", [
    ("max_member_removal_share", 1.5), ("max_member_removal_share", -0.1), ("max_delete_share", 2.0),
    ("max_member_removals", -1), ("member_removal_share_min_members", -5), ("max_deletes", -1),
])
def test_guard_settings_are_range_checked(name, value):
    with pytest.raises(SettingsError, match=f"DOMAIN_SYNC_{name.upper()}"):
        Settings.from_env({f"DOMAIN_SYNC_{name.upper()}": str(value)})
    limits = Settings.from_env({"DOMAIN_SYNC_MAX_MEMBER_REMOVALS": "7", "DOMAIN_SYNC_MAX_MEMBER_REMOVAL_SHARE": "0.25"})
    assert (limits.max_member_removals, limits.max_member_removal_share) == (7, 0.25)


# ---- 3. approval names the plan

def deletes(n: int) -> ChangeSet:
    return change_set(*(Change(Op.DELETE, "user", f"u{i}", member_dn(i), reason="not in the tenant") for i in range(n)))


def test_a_plans_digest_is_its_change_list_and_changes_with_one_more_delete():
    digest = plan_digest(deletes(4))
    assert len(digest) == 64 and digest == plan_digest(ChangeSet.from_json(deletes(4).to_json()))
    assert plan_digest(deletes(5)) != digest
    # Counts and reasons are not the plan: only its changes are.
    other = deletes(4)
    other.blocked_reasons = ["x"]
    assert plan_digest(other) == digest


@pytest.mark.parametrize("n", [0, 1, 3])
def test_the_digest_is_the_sha256_of_the_whole_change_list_as_one_canonical_text(n):
    """Hashed change by change (a first sync's plan is hundreds of MB), it is still the digest of the list's text:
    a digest approved before stays the digest of the same plan."""
    plan = change_set(*(Change(Op.CREATE, "user", f"u{i}", f"CN=Zoë {i},OU=S,DC=x", values={"cn": [f"Zoë {i}"]})
                        for i in range(n)), *deletes(n).changes)
    text = json.dumps([c.to_json() for c in plan.changes], sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    assert plan_digest(plan) == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_only_the_approved_digest_lets_a_blocked_plan_through():
    digest = plan_digest(deletes(4))
    assert approval_status([], digest, None) == "clear"
    assert approval_status(["too many"], digest, None) == "blocked"
    assert approval_status(["too many"], digest, digest) == "approved"
    assert approval_status(["too many"], plan_digest(deletes(5)), digest) == "blocked"


def test_approve_plan_must_be_a_digest():
    digest = plan_digest(deletes(1))
    assert approved_digest({}) is None and approved_digest({"approve_plan": ""}) is None
    assert approved_digest({"approve_plan": f" {digest.upper()} "}) == digest
    for bad in ("true", True, digest[:-1]):
        with pytest.raises(ApprovalInvalid, match="not a plan digest"):
            approved_digest({"approve_plan": bad})


def test_the_blocked_message_and_plan_file_name_the_digest(tmp_path):
    digest = plan_digest(deletes(4))
    message = blocked_message(["4 users would be deleted"], digest, "ab" * 32, "plan.txt", {"approve_deletions": True})
    assert f"approve_plan={digest}" in message and "approved another plan" in message
    assert "approve_deletions is no longer accepted" in message
    header = preview_header(RunFolder(tmp_path, "r"), digest, "blocked")
    assert f"digest: {digest}" in header and f"approve_plan={digest}" in header


# ---- 2. lost state

def settings_for(tmp_path, **values) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), **values)


def commit_state(settings: Settings, run_id: str = "done") -> StateStore:
    run = RunFolder(settings.runs_dir, run_id)
    for frame in ("users", "groups", "members"):
        run.snapshot(frame).write_bytes(b"")
    state = StateStore(settings.state_dir)
    state.commit(run.snapshot_dir, {"users": "https://graph/users?delta=1", "groups": "https://graph/groups?delta=1"})
    return state


def never_called(settings):
    raise AssertionError("Graph was read although the state is lost")


def test_saved_delta_links_without_their_snapshot_stop_extract_before_reading_and_alert(tmp_path):
    from domain_sync.extract.stage import extract_resource

    settings = settings_for(tmp_path)
    state = commit_state(settings)
    (state.current() / "snapshot_users.parquet").unlink()
    with pytest.raises(StateLost, match="snapshot_users.parquet missing") as caught:
        extract_resource(settings, RunFolder(settings.runs_dir, "next"), "users", False, hook_factory=never_called)
    assert isinstance(caught.value, PermanentError)
    alerts = [a for a in read_alerts(settings) if a["kind"] == "state_lost"]
    assert alerts and alerts[0]["missing"] == [f"{state.version()}/snapshot_users.parquet"]
    assert not RunFolder(settings.runs_dir, "next").staged("users").exists()

    # The whole version folder gone is lost state too.
    shutil.rmtree(state.current())
    with pytest.raises(StateLost, match="the whole committed version"):
        extract_resource(settings, RunFolder(settings.runs_dir, "next"), "groups", False, hook_factory=never_called)


def test_a_full_resync_goes_on_reading_when_the_snapshot_is_lost(tmp_path):
    from domain_sync.extract.stage import extract_resource

    settings = settings_for(tmp_path)
    state = commit_state(settings)
    (state.current() / "snapshot_members.parquet").unlink()

    class Reached(Exception):
        pass

    def reached(settings):
        raise Reached

    with pytest.raises(Reached):
        extract_resource(settings, RunFolder(settings.runs_dir, "resync"), "groups", True, hook_factory=reached)


def test_transform_never_folds_a_delta_round_onto_no_snapshot(tmp_path):
    from tests.unit.test_validate_suites import transform_run, user, write_round

    settings = settings_for(tmp_path)
    run = write_round(settings, "delta", [user(n) for n in range(3)], full=False)
    with pytest.raises(StateLost, match="a delta round of users, groups, members but no committed snapshot"):
        transform_run(settings, run)
    assert [a["kind"] for a in read_alerts(settings)] == ["state_lost"]


def test_no_committed_state_while_the_domain_holds_synced_objects_needs_approval(tmp_path):
    settings = settings_for(tmp_path)
    ctx = StageContext.offline(settings, "after-loss")
    reasons = lost_state_reasons(ctx, {"user": 3, "group": 1})
    assert reasons and "lost state" in reasons[0] and "4 synced objects" in reasons[0]
    assert [a["kind"] for a in read_alerts(settings)] == ["state_lost"]
    # A first run (the domain holds nothing of ours) and a run with its state are not lost state.
    assert lost_state_reasons(ctx, {"user": 0, "group": 0}) == []
    commit_state(settings)
    assert lost_state_reasons(ctx, {"user": 3, "group": 1}) == []


def test_a_first_sync_that_wrote_and_never_committed_is_not_lost_state(tmp_path):
    settings = settings_for(tmp_path)
    ctx = StageContext.offline(settings, "second-try")
    StateStore(settings.state_dir).note_writes("first-try")  # its apply wrote, then failed
    assert lost_state_reasons(ctx, {"user": 3, "group": 1}) == []
    assert read_alerts(settings) == []
    # A committed version whose files are gone is lost, the note notwithstanding.
    state = commit_state(settings)
    shutil.rmtree(state.current())
    assert "the whole committed version" in lost_state_reasons(ctx, {"user": 3, "group": 1})[0]


# ---- 4. runs never overlap

def test_a_second_run_is_refused_the_lock_until_the_first_releases_it(tmp_path):
    settings = settings_for(tmp_path, state_lock_wait_seconds=0)
    a, b = (RunFolder(settings.runs_dir, r) for r in ("run-a", "run-b"))
    assert hold_state(settings, a) is None
    assert hold_state(settings, a) is None  # its other extract, a retry
    with pytest.raises(StateLocked, match="locked by run 'run-a'") as caught:
        hold_state(settings, b)
    assert isinstance(caught.value, TransientError) and not isinstance(caught.value, PermanentError)
    assert "python -m domain_sync.state unlock run-a" in str(caught.value)
    assert not b.state_read.exists(), "the refused run recorded a state version"
    assert release_run_lock(settings, "run-b") == {"released": False, "holder": "run-a"}
    assert release_run_lock(settings, "run-a") == {"released": True, "holder": None}
    hold_state(settings, b)
    assert StateStore(settings.state_dir).lock_holder()["run_id"] == "run-b"


def test_a_second_run_waits_for_the_lock_and_takes_it_once_freed(tmp_path):
    settings = settings_for(tmp_path, state_lock_wait_seconds=60)
    a, b = (RunFolder(settings.runs_dir, r) for r in ("run-a", "run-b"))
    hold_state(settings, a)
    clock = [0.0]
    slept = []

    def sleep(seconds):  # the first run commits while the second waits
        slept.append(seconds)
        clock[0] += seconds
        if len(slept) == 3:
            release_run_lock(settings, "run-a")

    hold_state(settings, b, sleep=sleep, clock=lambda: clock[0])
    assert StateStore(settings.state_dir).lock_holder()["run_id"] == "run-b" and len(slept) == 3
    # Held longer than the wait: refused, after waiting no more than the setting says.
    clock[0], slept[:] = 0.0, []
    with pytest.raises(StateLocked, match="locked by run 'run-b'"):
        hold_state(settings, RunFolder(settings.runs_dir, "run-c"), sleep=sleep, clock=lambda: clock[0])
    assert sum(slept) == 60


def test_a_stale_lock_is_taken_over_with_an_alert(tmp_path):
    settings = settings_for(tmp_path, state_lock_stale_hours=2)
    state = StateStore(settings.state_dir)
    now = datetime.now(UTC)
    state.acquire_lock("old", now=now - timedelta(hours=3))
    hold_state(settings, RunFolder(settings.runs_dir, "new"), now=now)
    assert state.lock_holder()["run_id"] == "new"
    alert = [a for a in read_alerts(settings) if a["kind"] == "state_lock_recovered"][0]
    assert alert["previous_holder"] == "old" and "3.0 hours ago" in alert["message"]
    # A lock younger than that is kept, unless Airflow says its run is finished.
    with pytest.raises(StateLocked):
        state.acquire_lock("third", stale_after_hours=2, now=now + timedelta(hours=1))
    replaced = state.acquire_lock("third", stale_after_hours=2, holder_finished=lambda lock: "failed",
                                  now=now + timedelta(hours=1))
    assert replaced["run_id"] == "new" and replaced["stale"] == "its run is failed in Airflow"
    with pytest.raises(SettingsError, match="STATE_LOCK_STALE_HOURS"):
        hold_state(settings_for(tmp_path, state_lock_stale_hours=0), RunFolder(settings.runs_dir, "x"))


def test_a_lock_can_be_shown_and_freed_by_hand(tmp_path, monkeypatch, capsys):
    settings = settings_for(tmp_path)
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", settings.data_dir)
    hold_state(settings, RunFolder(settings.runs_dir, "stuck"))
    assert main(["lock"]) == 0 and "'run_id': 'stuck'" in capsys.readouterr().out
    assert main(["unlock", "other"]) == 1
    assert main(["unlock", "stuck"]) == 0
    assert StateStore(settings.state_dir).lock_holder() is None


def applied_run(settings: Settings, run_id: str) -> RunFolder:
    """A run that extracted (lock, version read), transformed and applied."""
    run = RunFolder(settings.runs_dir, run_id)
    hold_state(settings, run)
    for r in ("users", "groups"):
        write_json_atomic(run.delta_link(r), {"link": f"https://graph/{r}?delta={run_id}", "full_read": True})
    for frame in ("users", "groups", "members"):
        run.snapshot(frame).write_bytes(run_id.encode())
    write_json_atomic(run.apply_results, {"total_writes": 0})
    return run


def test_commit_refuses_a_state_version_other_than_the_one_extract_read(tmp_path):
    settings = settings_for(tmp_path)
    state = StateStore(settings.state_dir)
    run = applied_run(settings, "slow")
    # Meanwhile another version was committed (a run that took over the lock, a restored backup).
    other = commit_state(settings, "other").version()
    with pytest.raises(StateChanged, match="extract read None: another run committed since") as caught:
        commit_run(state, run)
    assert isinstance(caught.value, PermanentError)
    assert state.version() == other and state.delta_links()["users"]["link"] == "https://graph/users?delta=1"
    with pytest.raises(StateChanged, match="another run committed since"):
        check_state(state, run)  # what transform and apply ask too


def test_commit_saves_the_version_it_read_on_and_frees_the_lock(tmp_path):
    settings = settings_for(tmp_path)
    state = StateStore(settings.state_dir)
    first = commit_run(state, applied_run(settings, "one"))
    assert first["committed"] and first["previous_version"] is None and state.lock_holder() is None
    second = applied_run(settings, "two")
    assert json.loads(second.state_read.read_text())["version"] == first["version"]
    assert commit_run(state, second)["previous_version"] == first["version"]
    assert state.lock_holder() is None
    # A dry run commits nothing and frees the lock as well.
    assert commit_run(state, applied_run(settings, "dry"), dry_run=True)["committed"] is False
    assert state.lock_holder() is None


def test_stages_refuse_to_go_on_while_another_run_holds_the_lock(tmp_path):
    settings = settings_for(tmp_path)
    state = StateStore(settings.state_dir)
    run = applied_run(settings, "mine")
    state.release_lock("mine")
    state.acquire_lock("intruder")
    with pytest.raises(StateChanged, match="run 'intruder' holds the state lock now"):
        check_state(state, run)
    with pytest.raises(StateChanged, match="intruder"):
        commit_run(state, run)
    assert state.version() is None
