"""The Graph reader's error sorting and backoff, and the state store's delta-link ages and commit guard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from domain_sync.errors import PermanentError
from domain_sync.extract.graph_reader import (
    DeltaLinkExpired,
    GraphRequestRejected,
    TenantAuthError,
    classify,
    parse_retry_after,
)
from domain_sync.runs import RunFolder
from domain_sync.state import ApplyIncomplete, StateStore, commit_run


def graph_error(code: str, message: str = "m") -> dict:
    return {"error": {"code": code, "message": message, "innerError": {}}}


def airflow_error(name: str, body) -> Exception:
    from airflow.exceptions import AirflowBadRequest
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

    return {"AirflowException": AirflowException, "AirflowBadRequest": AirflowBadRequest,
            "AirflowNotFoundException": AirflowNotFoundException}[name](body)


def auth_error(status: int, text: str) -> ClientAuthenticationError:
    error = ClientAuthenticationError(message=text)
    error.status_code = status
    return error


@pytest.mark.parametrize("value, seconds", [("7", 7.0), ("0", 0.0), (" 2 ", 2.0), ("-3", 0.0), (None, None),
                                            ("soon", None)])
def test_retry_after_in_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date():
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("exc, status", [
    (httpx.ReadTimeout("slow"), None),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), None),
    (httpx.ConnectError("refused"), None),
    (ServiceRequestError("token endpoint unreachable"), None),
    (ConnectionResetError(), None),
])
def test_timeouts_and_dropped_connections_are_retried(exc, status):
    assert classify(exc, status, "tenant") is None


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, None])
def test_throttling_and_server_errors_past_the_hooks_retries_are_retried(status):
    assert classify(airflow_error("AirflowException", graph_error("TooManyRequests")), status, "tenant") is None


def test_other_client_errors_are_final_and_name_the_connection():
    final = classify(airflow_error("AirflowException", graph_error("Conflict", "no")), 409, "tenant")
    assert isinstance(final, GraphRequestRejected) and "'tenant'" in str(final) and "409" in str(final)
    final = classify(airflow_error("AirflowBadRequest", graph_error("Request_UnsupportedQuery")), 400, "tenant")
    assert isinstance(final, GraphRequestRejected) and "Request_UnsupportedQuery" in str(final)


@pytest.mark.parametrize("exc, status", [
    (airflow_error("AirflowBadRequest", graph_error("syncStateNotFound")), 400),
    (airflow_error("AirflowException", graph_error("resyncRequired")), 410),
    (airflow_error("AirflowException", "Gone"), 410),
])
def test_an_unknown_or_gone_delta_link_is_expired(exc, status):
    assert isinstance(classify(exc, status, "tenant"), DeltaLinkExpired)


def test_refused_client_credentials_are_final_and_name_the_connection():
    final = classify(auth_error(401, "(invalid_client) AADSTS7000215: Invalid client secret"), 401, "tenant")
    assert isinstance(final, TenantAuthError) and "'tenant'" in str(final) and "invalid_client" in str(final)
    assert isinstance(classify(PermissionError(graph_error("Authorization_RequestDenied")), 403, "tenant"),
                      TenantAuthError)


def test_a_token_endpoint_that_is_down_is_retried_not_taken_for_bad_credentials():
    assert classify(auth_error(503, "(temporarily_unavailable) busy"), None, "tenant") is None


def test_unexpected_exceptions_are_raised_as_they_are():
    error = KeyError("value")
    assert classify(error, None, "tenant") is error


def _snapshot_dir(tmp_path):
    folder = tmp_path / "transform"
    folder.mkdir()
    for name in ("snapshot_users.parquet", "snapshot_groups.parquet", "snapshot_members.parquet"):
        (folder / name).write_bytes(b"")
    return folder


def test_a_links_age_counts_from_when_graph_issued_it(tmp_path):
    store = StateStore(tmp_path / "state")
    now = datetime(2026, 3, 10, tzinfo=UTC)
    issued = (now - timedelta(days=2)).isoformat()
    store.commit(_snapshot_dir(tmp_path), {"users": {"link": "u", "received_at": issued}, "groups": "g"},
                 now=now - timedelta(days=1))
    ages = store.delta_link_ages(now=now)
    assert ages == {"users": 2.0, "groups": 1.0}
    assert store.delta_links()["users"] == {"link": "u", "received_at": issued,
                                            "saved_at": (now - timedelta(days=1)).isoformat()}


def test_commit_refuses_a_run_whose_apply_did_not_go_through_its_plan(tmp_path):
    store = StateStore(tmp_path / "state")
    run = RunFolder(tmp_path / "runs", "run")
    run.delta_link("users").write_text(json.dumps({"link": "u", "full_read": True}))
    with pytest.raises(ApplyIncomplete, match="no apply results"):
        commit_run(store, run)
    run.apply_results.write_text(json.dumps({"aborted": "domain unavailable"}))
    with pytest.raises(ApplyIncomplete, match=r"apply was aborted \(domain unavailable\)"):
        commit_run(store, run)
    run.apply_results.write_text(json.dumps({"total_writes": 0, "failed": [{"op": "create", "anchor": "a"}],
                                             "stopped": "1 of the 1 synced objects failed"}))
    with pytest.raises(ApplyIncomplete, match="apply stopped the run"):
        commit_run(store, run)
    assert isinstance(ApplyIncomplete("x"), PermanentError)
    assert store.delta_links() == {}
    assert commit_run(store, run, dry_run=True)["committed"] is False
