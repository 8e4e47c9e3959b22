"""User B tries every path to user A's job, its events and its file: all refused, nothing leaks.

Refusals for B must look exactly like refusals for a job that does not exist (404), so B
cannot even learn that A's job id is real.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.integration.support import Api, assert_problem


@pytest.fixture(scope="module")
def alice_job(stack: Stack) -> tuple[Api, dict[str, Any]]:
    alice = stack.api().signup()
    job = alice.wait_job(alice.submit("test.file", {"text": "alice's secret"})["id"])
    assert job["status"] == "succeeded"
    return alice, job


@pytest.fixture
def bob(stack: Stack) -> Api:
    return stack.api().signup()


PATHS = [
    ("GET", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}/result"),
    ("GET", "/api/v1/jobs/{id}/events"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
]


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_every_job_path_answers_404_for_someone_elses_job_like_for_no_job(
    alice_job: tuple[Api, dict[str, Any]], bob: Api, method: str, path: str
) -> None:
    _, job = alice_job
    other_id = str(uuid.uuid4())
    foreign = assert_problem(bob.request(method, path.format(id=job["id"])), 404)
    missing = assert_problem(bob.request(method, path.format(id=other_id)), 404)
    for body in (foreign, missing):
        body.pop("request_id", None)
    assert foreign == {**missing, "detail": missing["detail"].replace(other_id, job["id"])}
    assert "secret" not in str(foreign)


def test_lists_and_filters_never_include_someone_elses_jobs(
    alice_job: tuple[Api, dict[str, Any]], bob: Api
) -> None:
    _, job = alice_job
    for query in ("", "?status=succeeded", "?limit=100", "?status=queued"):
        listed = bob.get(f"/api/v1/jobs{query}").json()
        assert all(item["id"] != job["id"] for item in listed["items"])


def test_a_stolen_download_link_works_only_for_its_own_job_and_owner(
    alice_job: tuple[Api, dict[str, Any]], bob: Api, stack: Stack
) -> None:
    _, job = alice_job
    mine = bob.wait_job(bob.submit("test.file", {"text": "bob's"})["id"])
    bobs_token = mine["result"]["download_url"].split("token=", 1)[1]
    borrowed = stack.api().get(f"/api/v1/jobs/{job['id']}/result?token={bobs_token}", auth=False)
    assert_problem(borrowed, 401)
    assert "secret" not in borrowed.text


def test_resume_of_someone_elses_job_errors_and_replays_nothing(
    alice_job: tuple[Api, dict[str, Any]], bob: Api, listener_factory: Any
) -> None:
    _, job = alice_job
    spy = listener_factory(bob.token)
    answer = spy.client.call("job.resume", [{"job_id": job["id"]}], timeout=10)
    assert answer == {"results": [{"job_id": job["id"], "error": "not found"}]}
    spy.client.sleep(0.5)
    assert spy.events == []


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("join", {"room": "user:1"}),
        ("join_room", "user:1"),
        ("enter_room", {"room": "user:1", "sid": "x"}),
        ("subscribe", {"job_id": "*"}),
        ("job.resume", {"job_id": "../user:1", "after_seq": 0}),
    ],
)
def test_crafted_socket_events_open_no_other_room(
    stack: Stack, bob: Api, listener_factory: Any, event: str, data: Any
) -> None:
    alice = stack.api().signup()
    spy = listener_factory(bob.token)
    spy.client.emit(event, data)
    for room_owner in (alice.get("/api/v1/me").json()["id"], 1):
        spy.client.emit(event, {"room": f"user:{room_owner}"})
    job = alice.wait_job(alice.submit("demo.steps", {"steps": 2, "step_ms": 10})["id"])
    assert job["status"] == "succeeded"
    spy.client.sleep(0.5)
    assert all(payload["job_id"] != job["id"] for _, payload in spy.events)


def test_guessing_job_ids_finds_nothing(bob: Api) -> None:
    for guess in ("1", "0", "00000000-0000-0000-0000-000000000000", "../../etc/passwd", "%00"):
        assert bob.get(f"/api/v1/jobs/{guess}").status_code == 404
