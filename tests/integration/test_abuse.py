"""Abuse limits on a stack that enforces them (the shared test stack turns rate limits off):
login, registration and submission rates, the active-job cap, socket and event-stream caps, and
sockets whose token dies while they are open."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from flask_jwt_extended import create_access_token

from jobcast.service.auth.tokens import issue_tokens
from jobcast.service.auth.users import create_user
from tests.integration.conftest import ROOT, Stack
from tests.integration.support import Api, assert_problem, refusal

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("guarded"),
        env_overrides={
            "JOBCAST_RATE_LIMITS": "true",
            "JOBCAST_LIMIT_LOGIN_IP": "8/minute",
            "JOBCAST_LIMIT_LOGIN_EMAIL": "3/minute",
            "JOBCAST_LIMIT_REGISTER_IP": "4/minute",
            "JOBCAST_LIMIT_SUBMIT_USER": "5/minute",
            "JOBCAST_MAX_ACTIVE_JOBS": "3",
            "JOBCAST_MAX_SOCKETS_PER_USER": "2",
            "JOBCAST_MAX_STREAMS_PER_USER": "2",
            "JOBCAST_SOCKET_AUTH_CHECK_SECONDS": "0.5",
            "JOBCAST_SOCKET_MAX_MESSAGE_BYTES": "4096",
            "JOBCAST_IO_CONCURRENCY": "20",
            "JOBCAST_JOB_MODULES": "jobcast.service.builtin,tests.integration.jobs",
            "PYTHONPATH": str(ROOT),
        },
        worker_pools=("io",),
    ) as stack:
        yield stack


def _user(stack: Stack) -> Api:
    """A user made and signed in in-process, so no registration or login limit is spent."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    with stack.app().app_context():
        tokens = issue_tokens(create_user(email, PASSWORD).id)
    return Api(
        stack.base_url,
        token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        email=email,
    )


def _assert_rate_limited(response: Any) -> dict[str, Any]:
    body = assert_problem(response, 429)
    assert body["type"].endswith("/rate-limited")
    assert int(response.headers["Retry-After"]) > 0
    return body


def test_registrations_per_address_are_limited(guarded: Stack) -> None:
    anonymous = guarded.api()
    answers = [
        anonymous.post(
            "/api/v1/auth/register",
            json={"email": f"r-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
        )
        for _ in range(5)
    ]
    assert [a.status_code for a in answers[:4]] == [201] * 4
    _assert_rate_limited(answers[4])


def test_login_attempts_per_email_are_limited_even_with_the_right_password(
    guarded: Stack,
) -> None:
    victim = _user(guarded)
    anonymous = guarded.api()
    for _ in range(3):
        wrong = {"email": victim.email, "password": "not the password"}
        assert anonymous.post("/api/v1/auth/login", json=wrong).status_code == 401
    right = {"email": victim.email, "password": PASSWORD}
    _assert_rate_limited(anonymous.post("/api/v1/auth/login", json=right))


def test_login_attempts_per_address_are_limited_across_emails(guarded: Stack) -> None:
    anonymous = guarded.api()
    for attempt in range(1, 10):
        response = anonymous.post(
            "/api/v1/auth/login",
            json={"email": f"nobody-{attempt}@example.com", "password": "whatever1"},
        )
        if response.status_code == 429:
            _assert_rate_limited(response)
            return
        assert response.status_code == 401
    pytest.fail("nine logins from one address in a minute were all let through")


def test_submissions_per_user_are_limited(guarded: Stack) -> None:
    user = _user(guarded)
    for _ in range(5):
        user.wait_job(user.submit("demo.steps", {"steps": 1, "step_ms": 0})["id"])
    response = user.post("/api/v1/jobs", json={"type": "demo.steps", "params": {"steps": 1}})
    _assert_rate_limited(response)
    assert len(user.get("/api/v1/jobs").json()["items"]) == 5


def test_unfinished_jobs_per_user_are_capped(guarded: Stack) -> None:
    user = _user(guarded)
    slow = [user.submit("demo.steps", {"steps": 200, "step_ms": 100}) for _ in range(3)]
    refused = user.post("/api/v1/jobs", json={"type": "demo.steps", "params": {"steps": 1}})
    _assert_rate_limited(refused)
    assert "limit is 3" in refused.json()["detail"]
    assert user.post(f"/api/v1/jobs/{slow[0]['id']}/cancel").status_code == 202
    user.wait_job(slow[0]["id"])
    assert user.post("/api/v1/jobs", json={"type": "demo.steps", "params": {}}).status_code == 202
    for job in slow[1:]:
        user.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_sockets_per_user_are_capped(guarded: Stack) -> None:
    user = _user(guarded)
    first, second = guarded.listen(user.token), guarded.listen(user.token)
    assert refusal(guarded.base_url, user.token) == "too many connections for this user"
    first.close()
    time.sleep(0.3)
    third = guarded.listen(user.token)
    second.close()
    third.close()


def _wait_disconnected(client: socketio.Client, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while client.connected:
        assert time.monotonic() < deadline, "the server kept the socket open"
        time.sleep(0.1)


def test_logout_disconnects_the_sessions_open_sockets(guarded: Stack) -> None:
    user = _user(guarded)
    reasons: list[dict[str, Any]] = []
    listener = guarded.listen(user.token)
    listener.client.on("auth.revoked", reasons.append)
    assert user.post("/api/v1/auth/logout").status_code == 204
    _wait_disconnected(listener.client)
    assert reasons == [{"reason": "revoked"}]


def test_a_socket_is_disconnected_when_its_token_expires(guarded: Stack) -> None:
    user = _user(guarded)
    user_id = user.get("/api/v1/me").json()["id"]
    with guarded.app().app_context():
        short = create_access_token(identity=str(user_id), expires_delta=timedelta(seconds=2))
    reasons: list[dict[str, Any]] = []
    listener = guarded.listen(short)
    listener.client.on("auth.expired", reasons.append)
    _wait_disconnected(listener.client)
    assert reasons == [{"reason": "expired"}]


def test_an_oversized_socket_message_closes_the_connection(guarded: Stack) -> None:
    user = _user(guarded)
    listener = guarded.listen(user.token)
    listener.client.emit("job.resume", {"job_id": "x" * 10_000})
    _wait_disconnected(listener.client)


def test_a_socket_from_a_foreign_origin_is_refused(guarded: Stack) -> None:
    user = _user(guarded)
    with pytest.raises(socketio.exceptions.ConnectionError):
        guarded.listen(user.token, headers={"Origin": "https://evil.example"})


def test_api_answers_carry_no_cors_grant_for_a_foreign_origin(guarded: Stack) -> None:
    user = _user(guarded)
    response = user.get("/api/v1/me", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_configured_origins_get_cors_grants(tmp_path: Path, guarded: Stack) -> None:
    app = guarded.app(cors_origins="https://app.example.com")
    client = app.test_client()
    allowed = client.options(
        "/api/v1/jobs",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = client.options(
        "/api/v1/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_behind_a_trusted_proxy_limits_count_the_forwarded_client(guarded: Stack) -> None:
    app = guarded.app(trusted_proxies=1, limit_login_ip="2/minute")
    client = app.test_client()

    def attempt(address: str) -> int:
        return client.post(
            "/api/v1/auth/login",
            json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "whatever1"},
            headers={"X-Forwarded-For": address},
        ).status_code

    first = f"10.9.{uuid.uuid4().int % 250}.1"
    assert [attempt(first), attempt(first), attempt(first)] == [401, 401, 429]
    assert attempt(first.replace(".1", ".2")) == 401


def test_event_streams_per_user_are_capped(guarded: Stack) -> None:
    """A third stream is refused while two are open, for that user only; a closed stream
    frees its place."""
    user, other = _user(guarded), _user(guarded)
    job = user.submit("demo.steps", {"steps": 300, "step_ms": 100})
    url = f"/api/v1/jobs/{job['id']}/events"

    def opened() -> Any:
        stream = user.get(url, stream=True)
        assert stream.status_code == 200
        return stream

    first, second = opened(), opened()
    refused = user.get(url)
    body = _assert_rate_limited(refused)
    assert body["detail"] == "too many open event streams for this user (at most 2)"
    other_job = other.submit("demo.steps", {"steps": 300, "step_ms": 100})
    with other.get(f"/api/v1/jobs/{other_job['id']}/events", stream=True) as theirs:
        assert theirs.status_code == 200
    first.close()
    deadline = time.monotonic() + 10
    while (third := user.get(url, stream=True)).status_code == 429:
        third.close()
        assert time.monotonic() < deadline, "a closed stream never gave its place back"
        time.sleep(0.2)
    assert third.status_code == 200
    third.close()
    second.close()
    user.post(f"/api/v1/jobs/{job['id']}/cancel")
    other.post(f"/api/v1/jobs/{other_job['id']}/cancel")


def test_logout_ends_the_sessions_event_streams(guarded: Stack) -> None:
    user = _user(guarded)
    job = user.submit("demo.steps", {"steps": 300, "step_ms": 100})
    with user.get(f"/api/v1/jobs/{job['id']}/events", stream=True) as stream:
        lines = stream.iter_lines(decode_unicode=True)
        assert next(line for line in lines if line.startswith("event:")) == "event: job.queued"
        assert user.post("/api/v1/auth/logout").status_code == 204
        rest = list(lines)  # the server ends the stream
    assert "event: auth.revoked" in rest
    assert 'data: {"reason": "revoked"}' in rest


def test_every_answer_carries_the_security_headers(guarded: Stack) -> None:
    user = _user(guarded)
    for response in (
        user.get("/api/v1/me"),
        user.get("/api/v1/jobs/not-a-job"),
        guarded.api().get("/healthz"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    page = guarded.api().get("/")
    csp = page.headers["Content-Security-Policy"]
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
