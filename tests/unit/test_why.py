"""`python -m domain_sync.why`: a tenant object's history across the run folders."""

from __future__ import annotations

import os
import time

import pandas as pd

from domain_sync.runs import RunFolder, write_json_atomic
from domain_sync.why import format_history, history, main, resolve

ANA = "aaaaaaaa-0000-0000-0000-000000000001"


def staged_run(settings, run_id, rows, plan=None, applied=None, when=0.0):
    run = RunFolder(settings.runs_dir, run_id)
    pd.DataFrame(rows, columns=["id", "userPrincipalName", "jobTitle", "_removed", "_fields"]).to_parquet(
        run.staged("users"))
    if plan is not None:
        write_json_atomic(run.plan, {"status": "clear", "counts": {}, "changes": plan})
    if applied is not None:
        write_json_atomic(run.apply_results, applied)
    run.update_summary("report", {})
    os.utime(run.summary_dir / "report.json", (time.time() + when, time.time() + when))
    return run


def test_the_history_names_the_tenant_change_the_rule_the_operation_and_its_result(tmp_path, settings, capsys):
    staged_run(settings, "r1", [[ANA, "ana@contoso.example", "Engineer", None, "userPrincipalName,jobTitle"]],
               plan=[{"op": "create", "kind": "user", "anchor": ANA, "dn": "CN=Ana,OU=Sync",
                      "values": {"title": ["Engineer"]}}], applied={"dry_run": False, "failed": []}, when=-10)
    staged_run(settings, "r2", [[ANA, None, "Lead", None, "jobTitle"]],
               plan=[{"op": "modify", "kind": "user", "anchor": ANA, "dn": "CN=Ana,OU=Sync",
                      "values": {"title": ["Lead"]}}],
               applied={"dry_run": False, "failed": [{"op": "modify", "anchor": ANA, "result_code": 19,
                                                      "message": "constraintViolation"}]})
    staged_run(settings, "r3", [["bbbbbbbb-0000-0000-0000-000000000002", "bob@x", "Dev", None, "jobTitle"]], when=5)

    assert resolve(tmp_path / "data", "ANA@contoso.example") == ANA
    entries = history(settings, ANA)
    assert [e["run"] for e in entries] == ["r1", "r2"]
    text = format_history("ana@contoso.example", ANA, entries)
    r2 = text[text.index("run r2"):]
    assert 'tenant change (user): jobTitle="Lead"' in r2
    assert "plan (clear): modify CN=Ana,OU=Sync" in r2 and "mapping rule: jobTitle -> title" in r2
    assert "title: Lead" in r2 and "apply: modify failed: LDAP code 19 constraintViolation" in r2
    assert "apply: applied" in text[:text.index("run r2")]

    assert main([ANA, "--data-dir", str(tmp_path / "data")]) == 0
    assert "run r1" in capsys.readouterr().out
    assert main(["nobody@contoso.example"]) == 1


def test_a_run_whose_plan_held_the_object_for_failing_says_so_and_how_it_is_released(settings):
    run = staged_run(settings, "r1", [["bbbbbbbb-0000-0000-0000-000000000002", "bob@x", "Dev", None, "jobTitle"]],
                     plan=[])
    write_json_atomic(run.plan, {"status": "clear", "counts": {}, "changes": [], "held_failing": [ANA]})
    text = format_history(ANA, ANA, history(settings, ANA))
    assert "run r1" in text and "held: its writes failed run after run" in text and "full resync" in text
