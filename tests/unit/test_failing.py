"""Objects failing run after run: counted with when they first failed, quarantined after N runs in a row,
held by the plan (no write, memberships kept) until their tenant object changes or a full resync runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from domain_sync.config import Settings
from domain_sync.context import StageContext
from domain_sync.domain import DomainEndpoint
from domain_sync.failing import HELD_KEY, failing_objects, held_for_failing, staged_ids, track_failures
from domain_sync.plan import incremental
from domain_sync.plan import stage as plan_stage
from domain_sync.plan.changeset import UF_NORMAL_ACCOUNT
from domain_sync.plan.observed import ObservedDomain, ObservedObject
from domain_sync.records import RECORD_BASE_COLUMNS, RECORD_MEMBER_COLUMNS, attr_column
from domain_sync.runs import RunFolder, read_json, write_json_atomic
from domain_sync.state import StateStore

A = "aaaaaaaa-0000-0000-0000-000000000001"
B = "bbbbbbbb-0000-0000-0000-000000000002"
G = "99999999-0000-0000-0000-000000000009"
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAIN_SYNC_DATA_DIR", str(tmp_path / "data"))
    return Settings.from_env()


def applied(settings, run_id, failed=(), held=(), read_version="v0", staged=(), **results):
    """A run that read `read_version`, staged changes of `staged`, held `held` and failed `failed` at apply."""
    run = RunFolder(settings.runs_dir, run_id)
    write_json_atomic(run.state_read, {"version": read_version})
    write_json_atomic(run.plan, {"changes": [], "counts": {}, HELD_KEY: list(held)})
    write_json_atomic(run.apply_results, {"dry_run": False, **results, "failed": [
        {"op": "modify", "kind": "user", "anchor": a, "dn": f"CN={a},OU=Sync", "result_code": 19,
         "message": f"constraintViolation in {run_id}"} for a in failed]})
    staged_frame(run, staged)
    return run


def staged_frame(run, ids):
    pd.DataFrame({"id": list(ids)}, dtype=object).to_parquet(run.staged("users"))
    pd.DataFrame({"id": []}, dtype=object).to_parquet(run.staged("groups"))


def test_a_failing_object_is_recorded_with_when_it_first_failed_and_its_last_error(settings):
    track_failures(settings, applied(settings, "r1", failed=[A]), limit=3, now=T0)
    track_failures(settings, applied(settings, "r2", failed=[A]), limit=3, now=T0.replace(hour=10))
    entry = failing_objects(settings)[A]
    assert entry["first_seen"] == {"at": T0.isoformat(), "run": "r1"}
    assert entry["runs"] == 2 and entry["last_run"] == "r2" and entry["last_seen_at"] == T0.replace(hour=10).isoformat()
    assert entry["last_error"] == "LDAP code 19 constraintViolation in r2" and entry["op"] == "modify"
    assert entry["quarantined"] is None


def test_the_same_run_tracked_twice_counts_once(settings):
    run = applied(settings, "r1", failed=[A])
    track_failures(settings, run, limit=3)
    track_failures(settings, run, limit=3)
    assert failing_objects(settings)[A]["runs"] == 1


def test_a_dry_run_or_an_aborted_apply_counts_nothing(settings):
    track_failures(settings, applied(settings, "r1", failed=[A], dry_run=True), limit=1)
    track_failures(settings, applied(settings, "r2", failed=[A], aborted="domain gone"), limit=1)
    assert failing_objects(settings) == {}


def test_n_runs_in_a_row_quarantine_the_object_once(settings):
    reached = [track_failures(settings, applied(settings, f"r{n}", failed=[A], read_version=f"v{n}"), limit=3)
               for n in (1, 2, 3)]
    assert [len(r) for r in reached] == [0, 0, 1] and reached[2][0]["anchor"] == A
    quarantined = failing_objects(settings)[A]["quarantined"]
    assert quarantined["run"] == "r3" and quarantined["read_version"] == "v3"


def test_a_success_between_failures_starts_the_count_again(settings):
    for n, failed in enumerate([[A], [A], [], [A]], start=1):
        track_failures(settings, applied(settings, f"r{n}", failed=failed), limit=3)
    assert failing_objects(settings)[A]["runs"] == 1 and failing_objects(settings)[A]["first_seen"]["run"] == "r4"


def test_a_quarantined_object_the_plan_held_stays_quarantined(settings):
    track_failures(settings, applied(settings, "r1", failed=[A, B]), limit=1)
    # r2's plan held both (not written, so not failed); neither is reset for not being planned.
    track_failures(settings, applied(settings, "r2", held=[A, B]), limit=1)
    assert set(failing_objects(settings)) == {A, B}
    assert failing_objects(settings)[A]["quarantined"]["run"] == "r1"


def test_a_released_object_that_goes_through_is_dropped_and_one_that_fails_again_is_quarantined_again(settings):
    track_failures(settings, applied(settings, "r1", failed=[A, B]), limit=1)
    again = track_failures(settings, applied(settings, "r2", failed=[B]), limit=1)  # both released, A went through
    assert set(failing_objects(settings)) == {B} and [e["anchor"] for e in again] == [B]
    assert failing_objects(settings)[B]["runs"] == 2 and failing_objects(settings)[B]["quarantined"]["run"] == "r2"


def test_the_plan_holds_a_quarantined_object_until_its_tenant_object_changes(settings):
    track_failures(settings, applied(settings, "r1", failed=[A], read_version="v0"), limit=1)
    # The next run read the state r1 committed: a change of A in its staged frames releases A.
    quiet = applied(settings, "r2", read_version="v1", staged=[B])
    assert held_for_failing(settings, quiet, staged_ids(quiet)) == ({A}, set())
    changed = applied(settings, "r3", read_version="v1", staged=[A.upper()])
    assert held_for_failing(settings, changed, staged_ids(changed)) == (set(), {A})


def test_re_reading_the_changes_of_the_quarantining_run_does_not_release(settings):
    """The quarantining run did not commit (its apply stopped): the next run reads the same state and the same
    staged change of the object, which is no news about it."""
    track_failures(settings, applied(settings, "r1", failed=[A], read_version="v0", staged=[A], stopped="too many"),
                   limit=1)
    rerun = applied(settings, "r2", read_version="v0", staged=[A])
    assert held_for_failing(settings, rerun, staged_ids(rerun)) == ({A}, set())


def test_a_full_resync_releases_every_quarantined_object(settings):
    track_failures(settings, applied(settings, "r1", failed=[A, B]), limit=1)
    run = applied(settings, "r2", read_version="v1")
    assert held_for_failing(settings, run, staged_ids(run), full_resync=True) == (set(), {A, B})


# ---- the plan stage holds them

C = "OU=Sync,DC=corp,DC=example,DC=test"
ANCHOR = "mS-DS-ConsistencyGuid"


def _user(anchor, name, title):
    return {"anchor": anchor, "kind": "user", "cn": name, "account_name": name, "enabled": True,
            "password_never_expires": False, "security_enabled": None, "manager_anchor": None,
            attr_column("displayName"): name, attr_column("title"): title}


def _observed_user(anchor, name, title):
    return ObservedObject(anchor, "user", f"CN={name},{C}", {
        "samaccountname": [name], "displayname": [name], "title": [title],
        "useraccountcontrol": [str(UF_NORMAL_ACCOUNT)]})


def plan_run(settings, monkeypatch, run_id, staged=(), **params):
    """The plan stage over a tenant where A and B changed title and left group G, against a built domain."""
    run = RunFolder(settings.runs_dir, run_id)
    write_json_atomic(run.state_read, {"version": "v1"})
    write_json_atomic(run.quarantine, [])
    staged_frame(run, staged)
    columns = RECORD_BASE_COLUMNS + [attr_column("displayName"), attr_column("title")]
    pd.DataFrame([_user(A, "ana", "Lead"), _user(B, "bob", "Lead")], columns=columns).to_parquet(run.records("users"))
    group = {"anchor": G, "kind": "group", "cn": "Sales", "account_name": "Sales", "enabled": None,
             "password_never_expires": None, "security_enabled": True, "manager_anchor": None,
             attr_column("displayName"): "Sales", attr_column("title"): None}
    pd.DataFrame([group], columns=columns).to_parquet(run.records("groups"))
    pd.DataFrame(columns=RECORD_MEMBER_COLUMNS).to_parquet(run.records("members"))
    objects = [_observed_user(A, "ana", "Dev"), _observed_user(B, "bob", "Dev"),
               ObservedObject(G, "group", f"CN=Sales,{C}", {"samaccountname": ["Sales"], "displayname": ["Sales"],
                                                            "grouptype": [str(-2147483646)]},
                              members=[f"CN=ana,{C}", f"CN=bob,{C}"])]
    domain = ObservedDomain(C, [], {o.anchor: o for o in objects}, {}, {}, set(), {o.dn.lower() for o in objects})

    class Connection:
        def unbind(self):
            pass

    monkeypatch.setattr(plan_stage, "connect", lambda *a, **k: Connection())
    monkeypatch.setattr(incremental, "observe_domain", lambda *a, **k: domain)
    monkeypatch.setattr(incremental, "read_root", lambda conn: {"usn": None, "server": None})
    monkeypatch.setattr(incremental, "container_guids", lambda conn, dns: {})
    StateStore(settings.state_dir).note_writes("r0")  # the domain's objects come from this store: not lost state
    ctx = StageContext(settings, run, dict(params),
                       endpoint_factory=lambda s: DomainEndpoint("dc", 636, "cn=x", "pw", "DC=corp,DC=example,DC=test"))
    return plan_stage.run(ctx), run


def written(run):
    return {(c["op"], c["anchor"]) for c in read_json(run.plan)["changes"]}


def test_the_plan_writes_nothing_to_a_quarantined_failing_object_and_keeps_its_memberships(settings, monkeypatch):
    monkeypatch.setenv("DOMAIN_SYNC_CONTAINER", "OU=Sync")
    settings = Settings.from_env()
    track_failures(settings, applied(settings, "r0", failed=[A], read_version="v0"), limit=1)
    summary, run = plan_run(settings, monkeypatch, "r1", staged=[B])
    # B is written (its title, out of the group); A, held, keeps its title and its membership.
    assert written(run) == {("modify", B), ("remove_members", G)}
    plan = read_json(run.plan)
    assert plan[HELD_KEY] == [A] and plan["synced_in_domain"] == {"user": 2, "group": 1}
    assert next(c for c in plan["changes"] if c["op"] == "remove_members")["members"] == [f"CN=bob,{C}"]
    assert summary["held_failing"] == {"count": 1, "anchors": [A], "released": []}


def test_a_tenant_change_or_a_full_resync_lets_the_plan_write_it_again(settings, monkeypatch):
    monkeypatch.setenv("DOMAIN_SYNC_CONTAINER", "OU=Sync")
    settings = Settings.from_env()
    track_failures(settings, applied(settings, "r0", failed=[A], read_version="v0"), limit=1)
    summary, run = plan_run(settings, monkeypatch, "r1", staged=[A])
    assert ("modify", A) in written(run) and summary["held_failing"]["released"] == [A]
    summary, run = plan_run(settings, monkeypatch, "r2", full_resync=True)
    assert ("modify", A) in written(run) and summary["held_failing"]["count"] == 0


def test_the_run_summary_counts_failed_and_held_objects_without_calling_the_run_failed():
    from domain_sync.notifiers import run_counts
    from domain_sync.summary import format_summary

    summary = {"run_id": "r1", "plan": {"held_failing": {"count": 1, "anchors": [A], "released": []}},
               "apply": {"writes": {"user.modify": 3}, "failed": [{"anchor": B, "op": "modify"},
                                                                {"anchor": B, "op": "add_members"}]}}
    text = format_summary(summary)
    assert "failed objects: 1" in text and "held for failing run after run: 1" in text and "FAILED" not in text
    assert "failed_stages" not in run_counts(summary)
    summary["commit"] = {"failed": "ApplyIncomplete: apply stopped the run"}
    assert "FAILED at commit: ApplyIncomplete" in format_summary(summary)
    assert run_counts(summary)["failed_stages"] == ["commit"]
