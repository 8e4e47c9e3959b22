"""Test clients for the running stack: HTTP (requests) and Socket.IO (python-socketio)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import socketio

EVENTS = (
    "job.queued",
    "job.started",
    "job.progress",
    "job.output",
    "job.retrying",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
)
TERMINAL_EVENTS = {"job.succeeded", "job.failed", "job.cancelled"}


@dataclass
class Api:
    """An HTTP client for one base URL, optionally signed in as one user."""

    base_url: str
    token: str | None = None
    refresh_token: str | None = None
    email: str | None = None
    http: requests.Session = field(default_factory=requests.Session)

    def request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth and self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request(
            method, self.base_url + path, headers=headers, timeout=30, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def signup(self, password: str = "correct horse battery") -> Api:
        """A new user on the same server, registered and logged in."""
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        registered = self.post(
            "/api/v1/auth/register", json={"email": email, "password": password}, auth=False
        )
        assert registered.status_code == 201, registered.text
        return self.login(email, password)

    def login(self, email: str, password: str) -> Api:
        """A client signed in as an existing user."""
        user = Api(self.base_url, email=email)
        response = user.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, auth=False
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        user.token, user.refresh_token = tokens["access_token"], tokens["refresh_token"]
        return user

    def submit(self, job_type: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post("/api/v1/jobs", json={"type": job_type, "params": params or {}})
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait_job(
        self,
        job_id: str,
        *,
        timeout: float = 60,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Poll the job until it is finished (or ``until`` holds)."""
        done = until or (lambda j: j["status"] in ("succeeded", "failed", "cancelled"))
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"/api/v1/jobs/{job_id}").json()
            if done(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.2)


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    return body


def refusal(base_url: str, token: str | None, **connect: Any) -> str:
    """The reason the server gives for refusing a Socket.IO connection (connect_error)."""
    client = socketio.Client(reconnection=False)
    reasons: list[Any] = []
    client.on("connect_error", reasons.append)
    auth = {"token": token} if token is not None else None
    try:
        client.connect(base_url, auth=auth, wait_timeout=10, **connect)
    except socketio.exceptions.ConnectionError as exc:
        if not reasons:
            return str(exc)
    else:
        client.disconnect()
        raise AssertionError("the server accepted the connection")
    reason = reasons[0]
    return str(reason.get("message") if isinstance(reason, dict) else reason)


class Listener:
    """A Socket.IO client that records every job event it receives."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        namespace: str = "/",
        events: tuple[str, ...] = EVENTS,
        **connect: Any,
    ) -> None:
        self.client = socketio.Client(reconnection=False)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()
        for name in events:
            self.client.on(name, self._recorder(name), namespace=namespace)
        auth = {"token": token} if token is not None else connect.pop("auth", None)
        self.client.connect(base_url, auth=auth, namespaces=[namespace], wait_timeout=10, **connect)

    def _recorder(self, name: str) -> Callable[[dict[str, Any]], None]:
        def record(payload: dict[str, Any]) -> None:
            with self._changed:
                self.events.append((name, payload))
                self._changed.notify_all()

        return record

    def for_job(self, job_id: str) -> list[tuple[str, dict[str, Any]]]:
        with self._changed:
            return [(n, p) for n, p in self.events if p.get("job_id") == job_id]

    def wait_terminal(self, job_id: str, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
        """Every event of ``job_id`` once its terminal event has arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(n in TERMINAL_EVENTS for n, _ in self.for_job(job_id)):
                if not self._changed.wait(timeout=max(0, deadline - time.monotonic())):
                    raise AssertionError(f"no terminal event for {job_id}: {self.for_job(job_id)}")
            return self.for_job(job_id)

    def close(self) -> None:
        self.client.disconnect()
