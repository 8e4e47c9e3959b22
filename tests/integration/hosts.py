"""The example host apps of ``examples/`` run for real, and the clients their users hold.

``ExampleHost`` is a ``LocalStack`` whose processes are the example's own: its ``init-db`` and
``add-user`` commands, its Celery worker (``celery -A examples.<name>.app:celery worker``) and
its web server (``python -m examples.<name>``), over a Redis the suite gives it.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from jobcast.service.procs import free_port
from jobcast.service.testing import LocalStack
from tests.integration.support import EVENTS, TERMINAL_EVENTS, Listener

ROOT = Path(__file__).parents[2]
NAMESPACE = "/jobcast"
PREFIX = "/jobcast"
START_TIMEOUT = 120  # a Celery worker on a busy two-core machine takes its time


def on_db(redis_url: str, db: int) -> str:
    """``redis_url`` with another database number: the example's Celery queues (jobcast.io...)
    must not be the ones the suite's own workers consume."""
    return urlsplit(redis_url)._replace(path=f"/{db}").geturl()


@dataclass
class ExampleHost(LocalStack):
    """``with ExampleHost(root, redis_url=..., package="examples.jwt_api", users=...)``:
    the example's tables and users made, its worker and web server running."""

    package: str = ""
    users: dict[str, str] = field(default_factory=dict)  # email -> password

    def _start(self) -> None:
        assert self.redis_url is not None, "an example host runs over a Redis it is given"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
        self.env = {
            **inherited,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "EXAMPLE_DATABASE_URL": f"sqlite:///{self.root / 'example.db'}",
            "JOBCAST_REDIS_URL": self.redis_url,
            "JOBCAST_STORAGE_DIR": str(self.storage_dir),
            **self.env_overrides,
        }
        self.flask("init-db")
        for email, password in self.users.items():
            self.flask("add-user", email, "--password", password)
        worker = self.start_process(
            "worker",
            [
                *(sys.executable, "-m", "celery", "-A", f"{self.package}.app:celery", "worker"),
                *("-Q", "celery,jobcast.io,jobcast.cpu", "--pool", "threads", "-c", "4"),
                *("--without-mingle", "--without-gossip", "-l", "INFO"),
            ],
        )
        self.base_url = self.start_web()
        self._wait_for_log("worker", worker, " ready.")

    def flask(self, *args: str) -> str:
        """Run one of the example's ``flask`` commands; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", f"{self.package}.app", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start_web(
        self, port: int | None = None, name: str = "web", env: dict[str, str] | None = None
    ) -> str:
        """Start the example's development server; its base URL once it answers."""
        port = port or free_port()
        proc = self.start_process(
            name, [sys.executable, "-m", self.package], {"PORT": str(port), **(env or {})}
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.log_tails()}")
            try:
                requests.get(url + PREFIX + "/jobs", timeout=2)  # any answer will do
                return url
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not answer on {url}\n{self.log_tails()}")
            time.sleep(0.2)

    def _wait_for_log(self, name: str, proc: subprocess.Popen[bytes], text: str) -> None:
        log = self.logs / f"{name}.log"
        deadline = time.monotonic() + START_TIMEOUT
        while text not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.log_tails()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} never logged {text!r}\n{self.log_tails()}")
            time.sleep(0.2)

    def log_tails(self, chars: int = 8000) -> str:
        return "\n".join(
            f"===== {log.name}\n{log.read_text(errors='replace')[-chars:]}"
            for log in sorted(self.logs.glob("*.log"))
        )


@contextmanager
def logs_on_failure(request: pytest.FixtureRequest, host: ExampleHost) -> Iterator[None]:
    """Print the host's process logs when the test around this fails: pytest shows them
    with the failure, as the test's captured teardown output."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        print(host.log_tails())


@dataclass
class HostUser:
    """One signed-in user of an example: its HTTP session, and how its sockets sign in
    (``headers={"Cookie": ...}`` or ``auth={"token": ...}``)."""

    base_url: str
    http: requests.Session
    socket_auth: dict[str, Any]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base_url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def socket(self) -> JobSocket:
        return JobSocket(self.base_url, **self.socket_connect())

    def socket_connect(self) -> dict[str, Any]:
        """``socket_auth`` for one ``connect``: engineio takes the Cookie out of the headers
        dict it is given."""
        return copy.deepcopy(self.socket_auth)


def sign_in_with_form(base_url: str, email: str, password: str) -> HostUser:
    """Flask-Login: the sign-in form, then the session cookie everywhere."""
    http = requests.Session()
    response = http.post(
        base_url + "/login", data={"email": email, "password": password}, timeout=30
    )
    assert response.status_code == 200 and response.url == base_url + "/", response.text
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    return HostUser(base_url, http, {"headers": {"Cookie": cookie}})


def sign_in_with_token(base_url: str, email: str, password: str) -> HostUser:
    """Flask-JWT-Extended: ``POST /login``, then the access token as Bearer and socket auth."""
    http = requests.Session()
    response = http.post(
        base_url + "/login", json={"email": email, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return HostUser(base_url, http, {"auth": {"token": token}})


class JobSocket(Listener):
    """A ``Listener`` on jobcast's namespace, with the waits and ``job.resume`` the example
    tests need."""

    def __init__(self, base_url: str, **connect: Any) -> None:
        events = (*EVENTS, "auth.revoked", "auth.expired")
        super().__init__(base_url, None, namespace=NAMESPACE, events=events, **connect)

    def wait_until(
        self, done: Callable[[], bool], what: str, timeout: float = 90
    ) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                if not self._changed.wait(timeout=max(0, deadline - time.monotonic())):
                    raise AssertionError(f"no {what} after {timeout} s: {self.events}")
            return list(self.events)

    def wait_event(self, job_id: str, name: str, timeout: float = 90) -> dict[str, Any]:
        """The first ``name`` event of ``job_id``, once it has arrived."""
        self.wait_until(lambda: any(n == name for n, _ in self.for_job(job_id)), name, timeout)
        return next(p for n, p in self.for_job(job_id) if n == name)

    def wait_terminal(self, job_id: str, timeout: float = 90) -> list[tuple[str, dict[str, Any]]]:
        """Every event of ``job_id`` once its terminal event has arrived."""
        self.wait_until(
            lambda: any(n in TERMINAL_EVENTS for n, _ in self.for_job(job_id)),
            f"terminal event of {job_id}",
            timeout,
        )
        return self.for_job(job_id)

    def resume(self, job_id: str, after_seq: int, epoch: int | None = None) -> Any:
        """``job.resume``'s acknowledgement; the replayed events arrive as events."""
        ask: dict[str, Any] = {"job_id": job_id, "after_seq": after_seq}
        if epoch is not None:
            ask["epoch"] = epoch
        return self.client.call("job.resume", ask, namespace=NAMESPACE, timeout=15)


def sse_events(response: requests.Response) -> list[tuple[str, str, str]]:
    """(id, event, data) of each event of a finished Server-Sent Events response."""
    found = []
    for block in response.text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            found.append((fields.get("id", ""), fields["event"], fields.get("data", "")))
    return found
