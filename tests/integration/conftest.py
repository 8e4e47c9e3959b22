"""The real stack for integration tests: Redis, database, SMTP, web server, Celery workers.

Everything runs as it does in production, in subprocesses started once per session; the logs
of the web server and workers are printed when a test fails to start them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from jobcast.procs import free_port
from tests.integration.support import Api, Listener


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[int, _Inbox]]:
    """A real SMTP server (aiosmtpd) whose received messages the tests can read."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    storage_dir: Path
    logs: Path

    def api(self) -> Api:
        return Api(self.base_url)

    def listen(self, token: str | None, **connect: Any) -> Listener:
        return Listener(self.base_url, token, **connect)


def _start(name: str, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout} s")


def stack_env(redis_url: str, database_url: str, root: Path, smtp_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "JOBCAST_ENV": "testing",
        "JOBCAST_REDIS_URL": redis_url,
        "JOBCAST_DATABASE_URL": database_url,
        "JOBCAST_STORAGE_DIR": str(root / "results"),
        "JOBCAST_SMTP_HOST": "127.0.0.1",
        "JOBCAST_SMTP_PORT": str(smtp_port),
        "JOBCAST_SOCKETIO_CHANNEL": f"jobcast-test-{uuid.uuid4().hex[:8]}",
        "JOBCAST_IO_CONCURRENCY": "50",
        "JOBCAST_CPU_CONCURRENCY": "2",
        "JOBCAST_JOB_MODULES": "jobcast.builtin,tests.integration.jobs",
        "JOBCAST_LOG_LEVEL": "INFO",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }


@pytest.fixture(scope="session")
def stack(
    redis_url: str,
    database_url: str,
    smtp: tuple[int, _Inbox],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    logs = root / "logs"
    logs.mkdir()
    env = stack_env(redis_url, database_url, root, smtp[0])
    subprocess.run(
        [sys.executable, "-m", "jobcast", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    port = free_port()
    procs = [
        _start("web", [sys.executable, "-m", "jobcast", "web", "--port", str(port)], env, logs),
        _start("worker", [sys.executable, "-m", "jobcast", "worker"], env, logs),
    ]
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(base_url + "/healthz", procs[0])
        yield Stack(base_url, env, root / "results", logs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        if os.environ.get("JOBCAST_TEST_SHOW_LOGS"):
            for log in sorted(logs.iterdir()):
                print(f"===== {log.name}\n{log.read_text(errors='replace')[-20000:]}")


@pytest.fixture
def api(stack: Stack) -> Api:
    """A freshly registered, logged-in user."""
    return stack.api().signup()


@pytest.fixture
def listener_factory(stack: Stack) -> Iterator[Any]:
    made: list[Listener] = []

    def make(token: str | None, **connect: Any) -> Listener:
        listener = stack.listen(token, **connect)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()
