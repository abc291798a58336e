"""Lineage through a real Airflow deployment: the OpenLineage provider's events (file transport) carry each
stage's input and output datasets with row counts and data-quality results, and `python -m domain_sync.why`
explains a user's change from the run folders. The users get initial passwords (Key Vault sink) and one a
password change (Key Vault source): none of those passwords is in any task or service log, XCom value,
run-folder or state file, alert or lineage event the deployment produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.airflow_services import REPO_ROOT, airflow_services  # noqa: F401 - fixture
from tests.fixtures.credentials import key_vault, ldap_login, use_key_vault
from tests.fixtures.sync_env import tenant_group, tenant_user

pytestmark = pytest.mark.e2e

SYNC = "tenant_to_domain_sync"


def events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def complete(all_events: list[dict], task: str) -> dict:
    found = [e for e in all_events if e.get("eventType") == "COMPLETE" and e["job"]["name"] == f"{SYNC}.{task}"]
    assert found, sorted({e["job"]["name"] for e in all_events})
    return found[-1]


def dataset(datasets: list[dict], namespace: str, name: str) -> dict:
    return next(d for d in datasets if d["namespace"] == namespace and d["name"] == name)


def test_openlineage_events_and_why_a_user_changed(sync_env, airflow_services, tmp_path):  # noqa: F811
    services = airflow_services
    users = [tenant_user(nick, name, jobTitle="Engineer") for nick, name in
             [("ana", "Ana Lima"), ("bob", "Bob Stone"), ("eva", "Eva Berg")]]
    emulator = sync_env.start_tenant({"users": users, "groups": [tenant_group("Staff", users)]})
    lineage_file = tmp_path / "openlineage.jsonl"
    use_key_vault(sync_env, emulator)
    sync_env.set(initial_password="random")
    services.start(
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps({"type": "file", "log_file_path": str(lineage_file),
                                                    "append": True}),
        AIRFLOW__OPENLINEAGE__NAMESPACE="domain-sync-test",
    )
    services.wait_for_dag(SYNC)
    services.cli("dags", "unpause", SYNC)

    def run(run_id: str) -> None:
        services.cli("dags", "trigger", SYNC, "--conf", "{}", "--run-id", run_id)
        assert services.wait_for_run(SYNC, run_id) == "success", services.diagnostics()

    run("lineage_first")
    vault = key_vault(emulator)
    passwords = {vault.read_initial(u["id"])["password"] for u in users}
    changed = "Ln-" + os.urandom(6).hex() + "-Qx!"
    passwords.add(changed)
    vault.drop_change(users[1]["id"], changed, datetime.now(UTC))
    emulator.admin.update_user(users[0]["id"], {"jobTitle": "Team lead"})
    run("lineage_second")

    services.wait_for(lambda: any("lineage_second" in json.dumps(e)
                                  and e["job"]["name"] == f"{SYNC}.apply" and e["eventType"] == "COMPLETE"
                                  for e in events(lineage_file)), 60, "the apply task's OpenLineage event")
    first_run = [e for e in events(lineage_file) if "lineage_first" in json.dumps(e["run"])]
    extract = complete(first_run, "extract_users")
    tenant_users = dataset(extract["inputs"], "x-msgraph://tenant", "users")
    assert tenant_users["inputFacets"]["inputStatistics"]["rowCount"] == 3
    staged = dataset(extract["outputs"], "domain-sync://runs", "extract/users.parquet")
    assert staged["outputFacets"]["outputStatistics"]["rowCount"] == 3

    validate = complete(first_run, "validate")
    records = dataset(validate["inputs"], "domain-sync://runs", "transform/records_users.parquet")
    assertions = records["facets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions), assertions
    assert records["inputFacets"]["dataQualityMetrics"]["rowCount"] == 3

    plan = complete(first_run, "plan")
    assert {(d["namespace"], d["name"]) for d in plan["inputs"]} >= {("x-ldap://domain", "users"),
                                                                      ("x-ldap://domain", "groups")}
    apply = complete(first_run, "apply")
    domain_users = dataset(apply["outputs"], "x-ldap://domain", "users")
    assert domain_users["outputFacets"]["outputStatistics"]["rowCount"] == 3  # three users created

    # Airflow's asset events: the domain's users and groups written by the first run's apply, users only by the second.
    def written(run_id):
        return sorted(uri for (uri,) in services.query(
            "SELECT a.uri FROM asset_event e JOIN asset a ON e.asset_id = a.id WHERE e.source_run_id = %s "
            "AND e.source_task_id = 'apply'", run_id))

    assert written("lineage_first") == ["x-ldap://domain/groups", "x-ldap://domain/synced-objects",
                                        "x-ldap://domain/users"]
    assert written("lineage_second") == ["x-ldap://domain/synced-objects", "x-ldap://domain/users"]

    # Why did ana change? The tenant change, the mapping rule, the LDAP operation and its result.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "include"), str(REPO_ROOT)]),
           "DOMAIN_SYNC_DATA_DIR": sync_env.settings.data_dir}
    out = subprocess.run([sys.executable, "-m", "domain_sync.why", users[0]["userPrincipalName"]], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    second = text[text.index("run lineage_second"):]
    assert 'jobTitle="Team lead"' in second, text
    assert "mapping rule: jobTitle -> title" in second, text
    assert "plan (clear): modify" in second and "title: Team lead" in second, text
    assert "apply: applied" in second, text
    first_run_text = text[text.index("run lineage_first"):text.index("run lineage_second")]
    assert "create" in first_run_text and "apply: applied" in first_run_text, text

    # The password change reached the domain; no password is anywhere the deployment wrote.
    assert ldap_login(sync_env.domain, users[1]["userPrincipalName"], changed)[0]
    import pandas as pd

    places: dict[str, str] = {}
    files = [lineage_file, *(p for root in (services.home, Path(sync_env.settings.data_dir))
                             for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc")]
    for path in files:  # task and service logs, run folders, state, alerts, the lineage events
        places[str(path)] = path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":  # compressed columns: read them back
            places[f"{path} (read)"] = pd.read_parquet(path).to_json()
    places["xcom table"] = json.dumps(services.query("SELECT run_id, task_id, key, value FROM xcom"), default=str)
    assert any("lineage_second" in key for key in places) and lineage_file.exists()
    for password in passwords:
        for form in (password, password.encode("utf-16-le").decode("latin-1")):
            leaks = [where for where, content in places.items() if form in content]
            assert not leaks, f"a password is in {leaks}"
