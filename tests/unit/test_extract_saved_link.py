"""A saved delta link that cannot be followed, expired or refused by Graph as garbled, leads to one full
read in the same task; a refusal of anything else (a full read, a link Graph just gave) fails as it is."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from domain_sync.config import Settings
from domain_sync.extract.graph_reader import (
    DeltaLinkRefused,
    GraphRequestRejected,
    SavedLinkUnusable,
    TenantAuthError,
    read_delta,
)
from domain_sync.extract.stage import extract_resource
from domain_sync.mapping import load_mapping
from domain_sync.runs import RunFolder
from domain_sync.state import StateStore

GRAPH = "https://graph.test/v1.0"
SAVED = f"{GRAPH}/users/delta?$deltatoken=eyJ2IjoxLCJrIjoidXNlcnMi"
SAVED_PATH = SAVED.removeprefix(f"{GRAPH}/")
GARBLED = {"error": {"code": "Request_BadRequest", "message": "The token in the request is malformed."}}


def bad_request(body=GARBLED) -> Exception:
    from airflow.exceptions import AirflowBadRequest

    return AirflowBadRequest(body)


def not_found() -> Exception:
    from airflow.sdk.exceptions import AirflowNotFoundException

    return AirflowNotFoundException({"error": {"code": "Request_ResourceNotFound", "message": "no such path"}})


def expired() -> Exception:
    return bad_request({"error": {"code": "syncStateNotFound", "message": "The delta token is expired."}})


class FakeGraph:
    """Answers requests by URL: an exception to raise, or a page; records every request made."""

    def __init__(self, answers: dict[str, list]):
        self.answers = answers
        self.requests: list[str] = []

    async def assert_allowed_host(self, url: str) -> None:
        if urlsplit(url).netloc != "graph.test":
            raise ValueError(url)

    async def get_async_conn(self):
        return object()

    async def close(self) -> None:
        pass

    async def run(self, url: str = "", query_parameters=None, **kwargs):
        self.requests.append(url)
        answer = self.answers[url.removeprefix(f"{GRAPH}/")].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def page(ids: list[str], delta_token: str | None = None, next_url: str | None = None) -> dict:
    link = ({"@odata.nextLink": next_url} if next_url
            else {"@odata.deltaLink": f"{GRAPH}/users/delta?$deltatoken={delta_token}"})
    return {"value": [{"id": i, "displayName": i} for i in ids], **link}


def read(graph: FakeGraph, link: str | None):
    pages: list[list[dict]] = []
    return asyncio.run(read_delta(graph, "users", ["id", "displayName"], link, pages.append, "tenant",
                                  retry_budget_seconds=1.0, sleep=lambda _: asyncio.sleep(0))), pages


# ---- the reader: what counts as an unusable saved link

@pytest.mark.parametrize("refusal", [bad_request, not_found], ids=["400", "404"])
def test_graph_refusing_the_saved_links_request_makes_the_link_unusable(refusal):
    graph = FakeGraph({SAVED_PATH: [refusal()]})
    with pytest.raises(DeltaLinkRefused) as caught:
        read(graph, SAVED)
    assert isinstance(caught.value, SavedLinkUnusable)
    message = str(caught.value)
    assert "'tenant'" in message and "saved users delta link" in message and "eyJ2IjoxLCJrIjoidXNlcnMi" not in message


def test_the_refusal_names_what_graph_said():
    graph = FakeGraph({SAVED_PATH: [bad_request()]})
    with pytest.raises(DeltaLinkRefused, match="HTTP 400 Request_BadRequest: The token in the request is malformed"):
        read(graph, SAVED)


def test_a_refused_full_read_is_not_taken_for_an_unusable_link():
    graph = FakeGraph({"users/delta": [bad_request()]})
    with pytest.raises(GraphRequestRejected) as caught:
        read(graph, None)
    assert not isinstance(caught.value, SavedLinkUnusable)


def test_a_refused_next_link_of_a_round_from_the_saved_link_is_not_the_saved_links_fault():
    next_url = f"{GRAPH}/users/delta?$skiptoken=abc"
    graph = FakeGraph({SAVED_PATH: [page(["u1"], next_url=next_url)],
                       "users/delta?$skiptoken=abc": [bad_request()]})
    with pytest.raises(GraphRequestRejected) as caught:
        read(graph, SAVED)
    assert not isinstance(caught.value, SavedLinkUnusable)


def test_refused_credentials_on_the_saved_link_stay_an_auth_error():
    denied = PermissionError({"error": {"code": "Authorization_RequestDenied", "message": "no"}})
    graph = FakeGraph({SAVED_PATH: [denied]})
    with pytest.raises(TenantAuthError):
        read(graph, SAVED)


# ---- the stage: one full read in the same task


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"))


def commit_saved_link(settings: Settings, link: str = SAVED) -> None:
    done = RunFolder(settings.runs_dir, "done")
    for frame in ("users", "groups", "members"):
        done.snapshot(frame).write_bytes(b"")
    select = load_mapping(settings.mapping_file).graph_select("user")
    StateStore(settings.state_dir).commit(done.snapshot_dir, {"users": {"link": link, "select": select}})


def extract(settings: Settings, graph: FakeGraph, run_id: str = "next"):
    return extract_resource(settings, RunFolder(settings.runs_dir, run_id), "users", False,
                            hook_factory=lambda _: graph)


def full_read_answers(saved_answer) -> dict[str, list]:
    return {SAVED_PATH: [saved_answer], "users/delta": [page(["u1", "u2", "u3"], "fresh")]}


def test_a_refused_saved_link_leads_to_one_full_read_in_the_same_task(settings):
    commit_saved_link(settings)
    graph = FakeGraph(full_read_answers(bad_request()))
    result = extract(settings, graph)
    assert graph.requests == [SAVED, "users/delta"]
    assert (result.full_read, result.unusable_link_recovered, result.expired_link_recovered) == (True, True, False)
    assert result.objects == 3 and "The token in the request is malformed" in result.saved_link_problem
    links = RunFolder(settings.runs_dir, "next").delta_links()
    assert links["users"]["full_read"] is True and links["users"]["link"].endswith("$deltatoken=fresh")


def test_an_expired_saved_link_takes_the_same_path(settings):
    commit_saved_link(settings)
    result = extract(settings, FakeGraph(full_read_answers(expired())))
    assert (result.full_read, result.unusable_link_recovered, result.expired_link_recovered) == (True, False, True)
    assert "syncStateNotFound" in result.saved_link_problem


def test_a_saved_link_graph_follows_is_a_delta_round(settings):
    commit_saved_link(settings)
    graph = FakeGraph(full_read_answers(page(["u1"], "next")))
    result = extract(settings, graph)
    assert graph.requests == [SAVED]
    assert (result.full_read, result.unusable_link_recovered, result.saved_link_problem) == (False, False, None)


def test_a_refusal_of_the_full_read_after_an_unusable_link_fails_the_task(settings):
    commit_saved_link(settings)
    graph = FakeGraph({SAVED_PATH: [bad_request()], "users/delta": [bad_request()]})
    with pytest.raises(GraphRequestRejected) as caught:
        extract(settings, graph)
    assert not isinstance(caught.value, SavedLinkUnusable)
    assert graph.requests == [SAVED, "users/delta"], "one full read, not more"
    assert RunFolder(settings.runs_dir, "next").delta_links() == {}

