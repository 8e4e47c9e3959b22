"""The jobs API contract, end to end: status codes, bodies, paging, ownership, job outcomes.

Every answer comes from the real web server and worker. Failures must be problem+json, tokens
are checked before anything else, and a job's life shows up both over HTTP and as numbered
Socket.IO events.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
from flask import Flask
from flask_jwt_extended import create_access_token
from sqlalchemy import create_engine, text

from tests.integration.conftest import Stack
from tests.integration.support import Api, Listener, assert_problem

JOBS = "/api/v1/jobs"
JOB_KEYS = {
    "id",
    "type",
    "status",
    "progress",
    "message",
    "params",
    "result",
    "error",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "trace_id",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
QUICK = {"steps": 1, "step_ms": 0}

Events = list[tuple[str, dict[str, Any]]]
ListenerFactory = Callable[..., Listener]


def assert_numbered(events: Events) -> None:
    """Events carry seq 1..n in the order they arrived, without gaps."""
    assert [payload["seq"] for _, payload in events] == list(range(1, len(events) + 1))


def names(events: Events) -> list[str]:
    return [name for name, _ in events]


def parse_iso(value: str) -> datetime:
    assert ISO_UTC.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- submitting -------------------------------------------------------------------------------


def test_submit_answers_202_with_location_and_the_queued_job(api: Api) -> None:
    response = api.post(JOBS, json={"type": "demo.steps", "params": {"steps": 2}})
    assert response.status_code == 202
    job = response.json()
    assert set(job) == JOB_KEYS
    assert response.headers["Location"] == f"{JOBS}/{job['id']}"
    uuid.UUID(job["id"])
    assert job["type"] == "demo.steps"
    assert job["status"] == "queued" and job["progress"] == 0 and job["attempts"] == 0
    assert job["params"] == {"steps": 2, "step_ms": 100}  # defaults filled in
    assert job["result"] is None and job["error"] is None
    parse_iso(job["created_at"])
    assert job["started_at"] is None and job["finished_at"] is None
    assert api.get(response.headers["Location"]).json()["id"] == job["id"]


def test_job_types_lists_every_type_with_its_params_schema(api: Api) -> None:
    response = api.get("/api/v1/job-types")
    assert response.status_code == 200
    items = {item["type"]: item for item in response.json()["items"]}
    assert {"demo.steps", "test.flaky", "test.fail", "test.crash", "test.slow"} <= set(items)
    steps = items["demo.steps"]
    assert set(steps) == {"type", "title", "params_schema"} and steps["title"]
    assert steps["params_schema"]["properties"]["steps"]["minimum"] == 1


@pytest.mark.parametrize(
    "job_type",
    [
        pytest.param("no.such.type", id="unknown"),
        pytest.param(None, id="missing"),
        pytest.param(42, id="not-a-string"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_job_type_is_422_naming_the_known_types(api: Api, job_type: Any) -> None:
    body = {"params": {}} if job_type is None else {"type": job_type, "params": {}}
    problem = assert_problem(api.post(JOBS, json=body), 422)
    assert "demo.steps" in problem["detail"] and "test.fail" in problem["detail"]
    assert [error["field"] for error in problem["errors"]] == ["type"]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        pytest.param({"steps": 0}, {"params.steps"}, id="below-minimum"),
        pytest.param({"steps": 10_001}, {"params.steps"}, id="above-maximum"),
        pytest.param({"steps": "many"}, {"params.steps"}, id="wrong-type"),
        pytest.param({"step_ms": -1}, {"params.step_ms"}, id="negative"),
        pytest.param({"steps": 0, "step_ms": -1}, {"params.steps", "params.step_ms"}, id="two"),
        pytest.param({"surprise": 1}, {"params.surprise"}, id="unknown-field"),
        pytest.param([1, 2], {"params"}, id="params-a-list"),
        pytest.param("steps=3", {"params"}, id="params-a-string"),
    ],
)
def test_params_failing_the_schema_are_422_with_field_paths(
    api: Api, params: Any, fields: set[str]
) -> None:
    problem = assert_problem(api.post(JOBS, json={"type": "demo.steps", "params": params}), 422)
    assert {error["field"] for error in problem["errors"]} == fields
    assert all(error["message"] and error["type"] for error in problem["errors"])


@pytest.mark.parametrize("body", [[], "demo.steps", 3])
def test_a_body_that_is_not_an_object_is_422(api: Api, body: Any) -> None:
    assert_problem(api.post(JOBS, json=body), 422)


@pytest.mark.parametrize("raw", ['{"type": "demo.steps",', "", "null", "{type: 1}"])
def test_malformed_json_is_400(api: Api, raw: str) -> None:
    response = api.post(JOBS, data=raw, headers={"Content-Type": "application/json"})
    assert_problem(response, 400)


def test_a_body_that_is_not_json_is_415(api: Api) -> None:
    response = api.post(JOBS, data="type=demo.steps", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415)


def _oversized_body() -> str:
    return json.dumps({"type": "demo.steps", "params": {"pad": "x" * (1024 * 1024)}})


def test_a_body_over_one_mebibyte_is_413(api: Api) -> None:
    response = api.post(JOBS, data=_oversized_body(), headers={"Content-Type": "application/json"})
    assert assert_problem(response, 413)["type"].endswith("/payload-too-large")
    # A client of its own: see test_a_413_leaves_the_connection_usable for why.
    assert Api(api.base_url, token=api.token).get(JOBS).json()["items"] == []


def test_a_413_leaves_the_connection_usable(api: Api) -> None:
    """After a 413 that says keep-alive, the next request on the same connection is answered."""
    host, port = api.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    auth = {"Authorization": f"Bearer {api.token}"}
    try:
        conn.request(
            "POST",
            JOBS,
            body=_oversized_body(),
            headers={**auth, "Content-Type": "application/json"},
        )
        first = conn.getresponse()
        first.read()
        assert first.status == 413
        assert first.getheader("Connection", "keep-alive").lower() == "keep-alive"
        time.sleep(0.5)  # let the server finish with the connection either way
        conn.request("GET", JOBS, headers=auth)
        assert conn.getresponse().status == 200
    finally:
        conn.close()


# --- tokens -----------------------------------------------------------------------------------

ENDPOINTS = [
    pytest.param("POST", JOBS, id="submit"),
    pytest.param("GET", JOBS, id="list"),
    pytest.param("GET", f"{JOBS}/{uuid.uuid4()}", id="get"),
    pytest.param("GET", f"{JOBS}/{uuid.uuid4()}/result", id="result"),
    pytest.param("GET", "/api/v1/job-types", id="job-types"),
    pytest.param("GET", "/api/v1/me", id="me"),
]
BAD_TOKENS = [
    "missing",
    "empty-bearer",
    "garbage",
    "three-garbage-parts",
    "basic-scheme",
    "two-tokens",
    "wrong-secret",
    "expired",
    "revoked",
    "refresh",
]


@pytest.fixture(scope="module")
def bad_headers(stack: Stack, server_app: Flask) -> Iterator[dict[str, dict[str, str]]]:
    """Authorization headers the server must refuse with 401, by kind."""
    user = stack.api().signup()
    user_id = user.get("/api/v1/me").json()["id"]
    revoked = stack.api().signup()
    assert revoked.post("/api/v1/auth/logout").status_code == 204
    with server_app.app_context():
        expired = create_access_token(identity=str(user_id), expires_delta=timedelta(seconds=-1))
    now = int(time.time())
    forged = pyjwt.encode(
        {
            "sub": str(user_id),
            "type": "access",
            "fresh": False,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        },
        "a-secret-the-server-does-not-have-0123456789",
        algorithm="HS256",
    )
    yield {
        "missing": {},
        "empty-bearer": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Bearer garbage"},
        "three-garbage-parts": {"Authorization": "Bearer a.b.c"},
        "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        "two-tokens": {"Authorization": f"Bearer {user.token} {user.token}"},
        "wrong-secret": {"Authorization": f"Bearer {forged}"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "revoked": {"Authorization": f"Bearer {revoked.token}"},
        "refresh": {"Authorization": f"Bearer {user.refresh_token}"},
    }


@pytest.mark.parametrize("kind", BAD_TOKENS)
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_answers_401_to_a_bad_or_missing_token(
    stack: Stack, bad_headers: dict[str, dict[str, str]], method: str, path: str, kind: str
) -> None:
    # The submit body is invalid too: the token must be judged first (401, never 422).
    body = {"type": "no.such.type", "params": {"steps": -1}} if method == "POST" else None
    response = stack.api().request(method, path, json=body, headers=bad_headers[kind])
    problem = assert_problem(response, 401)
    assert problem["type"].endswith("/unauthorized")


def test_expired_token_detail_says_expired(stack: Stack, bad_headers: dict[str, Any]) -> None:
    response = stack.api().get(JOBS, headers=bad_headers["expired"])
    assert "expired" in assert_problem(response, 401)["detail"]


def test_malformed_json_without_a_token_is_401_not_400(stack: Stack) -> None:
    response = stack.api().post(JOBS, data="{", headers={"Content-Type": "application/json"})
    assert_problem(response, 401)


# --- listing ----------------------------------------------------------------------------------


def _walk(api: Api, query: str) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Follow next_cursor from the first page to the last; page ids and the raw last page."""
    pages: list[list[str]] = []
    url = f"{JOBS}?{query}"
    while True:
        response = api.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append([job["id"] for job in body["items"]])
        if body["next_cursor"] is None:
            return pages, body["items"]
        url = f"{JOBS}?{query}&cursor={body['next_cursor']}"
        assert len(pages) < 20, "pagination does not end"


def test_list_pages_newest_first_until_next_cursor_is_null(stack: Stack, api: Api) -> None:
    ids = [api.submit("demo.steps", QUICK)["id"] for _ in range(5)]
    pages, last = _walk(api, "limit=2")
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]
    assert all(set(job) == JOB_KEYS for job in last)
    everything = api.get(f"{JOBS}?limit=100").json()
    assert [j["id"] for j in everything["items"]] == ids[::-1]
    assert everything["next_cursor"] is None
    assert stack.api().signup().get(JOBS).json() == {"items": [], "next_cursor": None}


def test_list_page_of_exactly_limit_items_has_no_next_cursor(api: Api) -> None:
    ids = [api.submit("demo.steps", QUICK)["id"] for _ in range(2)]
    body = api.get(f"{JOBS}?limit=2").json()
    assert [j["id"] for j in body["items"]] == ids[::-1]
    assert body["next_cursor"] is None


def test_list_filters_by_status(api: Api) -> None:
    failing = [api.submit("test.fail")["id"] for _ in range(2)]
    passing = [api.submit("demo.steps", QUICK)["id"] for _ in range(3)]
    for job_id in failing + passing:
        api.wait_job(job_id)
    assert _walk(api, "status=failed&limit=10")[0] == [failing[::-1]]
    assert _walk(api, "status=succeeded&limit=2")[0] == [passing[:0:-1], passing[0:1]]
    assert _walk(api, "status=queued")[0] == [[]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("limit=0", "limit", id="limit-zero"),
        pytest.param("limit=101", "limit", id="limit-too-big"),
        pytest.param("limit=-1", "limit", id="limit-negative"),
        pytest.param("limit=ten", "limit", id="limit-not-a-number"),
        pytest.param("status=bogus", "status", id="unknown-status"),
        pytest.param("status=", "status", id="empty-status"),
        pytest.param("cursor=garbage", "cursor", id="garbage-cursor"),
        pytest.param("cursor=" + "A" * 300, "cursor", id="huge-cursor"),
        pytest.param("sort=asc", "sort", id="unknown-parameter"),
    ],
)
def test_bad_list_query_is_422_naming_the_parameter(api: Api, query: str, field: str) -> None:
    problem = assert_problem(api.get(f"{JOBS}?{query}"), 422)
    assert field in {error["field"] for error in problem["errors"]}


# --- ownership and results --------------------------------------------------------------------


def test_another_users_job_is_404_just_like_a_missing_one(stack: Stack, api: Api) -> None:
    job = api.submit("demo.steps", QUICK)
    intruder = stack.api().signup()
    foreign = assert_problem(intruder.get(f"{JOBS}/{job['id']}"), 404)
    missing = assert_problem(intruder.get(f"{JOBS}/{uuid.uuid4()}"), 404)
    assert (foreign["type"], foreign["title"]) == (missing["type"], missing["title"])
    assert job["id"] not in [j["id"] for j in intruder.get(JOBS).json()["items"]]


@pytest.mark.parametrize("job_id", ["not-a-uuid", "1", "..%2F..%2Fetc"])
def test_a_job_id_that_is_not_a_uuid_is_404(api: Api, job_id: str) -> None:
    assert_problem(api.get(f"{JOBS}/{job_id}"), 404)


def test_result_of_a_job_without_a_file_is_404(api: Api) -> None:
    job = api.submit("demo.steps", QUICK)
    assert_problem(api.get(f"{JOBS}/{job['id']}/result"), 404)  # still queued or running
    finished = api.wait_job(job["id"])
    assert finished["status"] == "succeeded"
    assert finished["result"] is not None and "download_url" not in finished["result"]
    assert_problem(api.get(f"{JOBS}/{job['id']}/result"), 404)


def test_result_of_a_failed_job_is_404(api: Api) -> None:
    job = api.submit("test.fail")
    api.wait_job(job["id"])
    assert_problem(api.get(f"{JOBS}/{job['id']}/result"), 404)


def test_result_of_another_users_job_is_404(stack: Stack, api: Api) -> None:
    job = api.submit("demo.steps", QUICK)
    api.wait_job(job["id"])
    assert_problem(stack.api().signup().get(f"{JOBS}/{job['id']}/result"), 404)


def test_result_file_downloads_as_an_attachment_by_bearer_or_by_signed_link(
    stack: Stack, api: Api
) -> None:
    job = api.wait_job(api.submit("export.csv", {})["id"])  # a new user: just the header row
    assert job["status"] == "succeeded", job
    link = job["result"]["download_url"]
    assert urlsplit(link).path == f"{JOBS}/{job['id']}/result"
    assert parse_qs(urlsplit(link).query)["token"]

    by_bearer = api.get(f"{JOBS}/{job['id']}/result")
    assert by_bearer.status_code == 200
    disposition = by_bearer.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and job["result"]["filename"] in disposition
    by_link = stack.api().get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert by_link.status_code == 200 and by_link.content == by_bearer.content
    assert by_link.headers["Content-Disposition"] == disposition

    intruder = stack.api().signup()
    assert_problem(intruder.get(f"{JOBS}/{job['id']}/result"), 404)


def test_signed_link_works_without_authorization_but_only_for_its_job(
    stack: Stack, api: Api, server_app: Flask
) -> None:
    job = api.wait_job(api.submit("demo.steps", QUICK)["id"])
    other = api.wait_job(api.submit("demo.steps", QUICK)["id"])
    owner_id = str(api.get("/api/v1/me").json()["id"])
    signer = server_app.extensions["jobcast"].signer
    anonymous = stack.api()
    link = signer.url(job["id"], owner_id)
    token = link.split("?token=", 1)[1]
    # A valid link reaches the file check (no file here: 404), never a 401 for lack of a header.
    assert_problem(anonymous.get(link), 404)
    assert_problem(anonymous.get(f"{JOBS}/{other['id']}/result?token={token}"), 401)
    assert_problem(anonymous.get(f"{JOBS}/{job['id']}/result?token={token[:-3]}xyz"), 401)
    assert_problem(anonymous.get(f"{JOBS}/{job['id']}/result?token="), 401)


def test_signed_link_naming_another_owner_is_404(stack: Stack, api: Api, server_app: Flask) -> None:
    job = api.wait_job(api.submit("demo.steps", QUICK)["id"])
    intruder_id = str(stack.api().signup().get("/api/v1/me").json()["id"])
    link = server_app.extensions["jobcast"].signer.url(job["id"], intruder_id)
    assert_problem(stack.api().get(link), 404)


# --- request ids, routing errors, health ------------------------------------------------------


def _stored_request_id(stack: Stack, job_id: str) -> str | None:
    engine = create_engine(stack.env["JOBCAST_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            value = conn.execute(
                text("SELECT request_id FROM jobcast_jobs WHERE id = :id"), {"id": job_id}
            ).scalar_one()
            return None if value is None else str(value)
    finally:
        engine.dispose()


def test_a_sane_request_id_is_echoed_and_stored_on_the_job(stack: Stack, api: Api) -> None:
    request_id = "trace-7f3a.42:retry_1"
    response = api.post(
        JOBS,
        json={"type": "demo.steps", "params": QUICK},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 202
    assert response.headers["X-Request-ID"] == request_id
    assert _stored_request_id(stack, response.json()["id"]) == request_id


def test_a_request_id_is_generated_when_none_is_given(stack: Stack, api: Api) -> None:
    first, second = api.post(JOBS, json={"type": "demo.steps", "params": QUICK}), api.get(JOBS)
    generated = first.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert second.headers["X-Request-ID"] != generated
    assert _stored_request_id(stack, first.json()["id"]) == generated


@pytest.mark.parametrize(
    "given",
    ["has spaces", "x" * 129, "semi;colon", "<script>", "a/b"],
)
def test_an_insane_request_id_is_replaced(api: Api, given: str) -> None:
    returned = api.get(JOBS, headers={"X-Request-ID": given}).headers["X-Request-ID"]
    assert returned != given and re.fullmatch(r"[0-9a-f]{32}", returned)


def test_problem_documents_carry_the_request_id(stack: Stack) -> None:
    response = stack.api().get(JOBS, headers={"X-Request-ID": "abc-123"})
    assert assert_problem(response, 401)["request_id"] == "abc-123"
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v2/jobs", f"{JOBS}/{uuid.uuid4()}/x"])
def test_unknown_routes_are_404_problems(stack: Stack, path: str) -> None:
    problem = assert_problem(stack.api().get(path), 404)
    assert problem["type"].endswith("/not-found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", JOBS, {"GET", "POST"}),
        ("PUT", "/api/v1/auth/login", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_wrong_methods_are_405_problems_with_allow(
    stack: Stack, method: str, path: str, allowed: set[str]
) -> None:
    response = stack.api().request(method, path)
    assert assert_problem(response, 405)["type"].endswith("/method-not-allowed")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_healthz_answers_200(stack: Stack) -> None:
    response = stack.api().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_answers_200_when_database_and_redis_answer(stack: Stack) -> None:
    response = stack.api().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


# --- job outcomes -----------------------------------------------------------------------------


def test_flaky_job_retries_with_backoff_then_succeeds(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(api.token)
    job = api.submit("test.flaky", {"failures": 1})
    events = listener.wait_terminal(job["id"])
    assert names(events) == [
        "job.queued",
        "job.started",
        "job.retrying",
        "job.started",
        "job.succeeded",
    ]
    assert_numbered(events)
    started = [payload for name, payload in events if name == "job.started"]
    assert [payload["attempt"] for payload in started] == [1, 2]
    retry = events[2][1]
    assert retry["status"] == "retrying" and retry["attempt"] == 1
    assert retry["error"] == {"type": "transient", "message": "attempt 1 hit a transient error"}
    retry_at = parse_iso(retry["retry_at"]).timestamp()
    assert 0.1 <= retry_at - retry["ts"] <= 2  # backoff 0.2 s
    assert started[1]["ts"] >= retry_at - 0.05  # the second attempt waited for it

    row = api.get(f"{JOBS}/{job['id']}").json()
    assert row["status"] == "succeeded" and row["attempts"] == 2
    assert row["error"] is None and row["result"] == {"attempt": 2}


def test_flaky_job_fails_once_its_retries_are_spent(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(api.token)
    job = api.submit("test.flaky", {"failures": 5})  # max_retries=2: three attempts in all
    events = listener.wait_terminal(job["id"])
    assert names(events) == [
        "job.queued",
        "job.started",
        "job.retrying",
        "job.started",
        "job.retrying",
        "job.started",
        "job.failed",
    ]
    assert_numbered(events)
    delays = [
        parse_iso(payload["retry_at"]).timestamp() - payload["ts"]
        for name, payload in events
        if name == "job.retrying"
    ]
    assert delays[1] > delays[0] + 0.1  # exponential: 0.2 s, then 0.4 s
    failed = events[-1][1]
    assert failed["error"] == {"type": "transient", "message": "attempt 3 hit a transient error"}
    row = api.get(f"{JOBS}/{job['id']}").json()
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["error"] == failed["error"]


def test_job_error_fails_the_job_with_its_code_and_message(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(api.token)
    job = api.submit("test.fail")
    events = listener.wait_terminal(job["id"])
    assert names(events) == ["job.queued", "job.started", "job.progress", "job.failed"]
    assert_numbered(events)
    assert events[2][1]["progress"] == 10 and events[2][1]["message"] == "about to fail"
    error = {"type": "bad_input", "message": "the input is unusable"}
    assert events[-1][1]["status"] == "failed" and events[-1][1]["error"] == error

    time.sleep(1)  # a JobError is final: no retry may follow
    row = api.get(f"{JOBS}/{job['id']}").json()
    assert row["status"] == "failed" and row["error"] == error and row["attempts"] == 1
    assert row["message"] == "the input is unusable"
    assert parse_iso(row["finished_at"]) >= parse_iso(row["started_at"])
    assert len(listener.for_job(job["id"])) == len(events)


def test_a_crash_fails_as_internal_without_leaking_the_exception_text(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(api.token)
    job = api.submit("test.crash")
    events = listener.wait_terminal(job["id"])
    assert names(events) == ["job.queued", "job.started", "job.failed"]
    assert_numbered(events)
    row = api.get(f"{JOBS}/{job['id']}").json()
    listed = api.get(JOBS).json()["items"]
    assert row["status"] == "failed" and row["error"]["type"] == "internal"
    assert set(row["error"]) == {"type", "message"} and row["error"]["message"]
    assert events[-1][1]["error"] == row["error"]
    exposed = json.dumps([events, row, listed])
    for secret in ("secret internal detail", "/etc/passwd", "SELECT", "Traceback", "line "):
        assert secret not in exposed


def test_a_job_past_its_time_limit_fails_as_timeout_and_the_worker_survives(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(api.token)
    job = api.submit("test.slow", {"seconds": 30})
    events = listener.wait_terminal(job["id"], timeout=30)
    assert names(events) == ["job.queued", "job.started", "job.failed"]
    assert_numbered(events)
    assert events[-1][1]["error"]["type"] == "timeout"
    row = api.get(f"{JOBS}/{job['id']}").json()
    assert row["status"] == "failed" and row["error"]["type"] == "timeout"
    ran_for = parse_iso(row["finished_at"]) - parse_iso(row["started_at"])
    assert timedelta(seconds=1.5) <= ran_for < timedelta(seconds=10)  # limit is 2 s

    later = api.submit("demo.steps", QUICK)
    assert names(listener.wait_terminal(later["id"]))[-1] == "job.succeeded"
