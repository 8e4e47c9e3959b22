"""The real stack for integration tests: Redis, database, SMTP, web server, Celery workers.

Everything runs as it does in production, in subprocesses started once per session; the logs
of the web server and workers are printed when a test fails to start them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from jobcast import create_app
from jobcast.llm.fake_provider import FakeProvider
from jobcast.service import migrate
from jobcast.service.procs import free_port, redis_server_command, wait_for_port
from jobcast.service.testing import LocalStack
from tests.integration.support import Api, Listener

ROOT = Path(__file__).parents[2]


class Stack(LocalStack):
    """The running stack plus the test clients that talk to it."""

    def api(self) -> Api:
        return Api(self.base_url)

    def listen(self, token: str | None, **connect: Any) -> Listener:
        return Listener(self.base_url, token, **connect)

    def app(self, **overrides: Any) -> Flask:
        """An in-process app with the servers' settings: tokens and links it signs are ones
        the server trusts, and it reads and writes the same database, Redis and storage."""
        return create_app(
            {
                "env": "testing",
                "redis_url": self.env["JOBCAST_REDIS_URL"],
                "database_url": self.env["JOBCAST_DATABASE_URL"],
                "storage_dir": self.storage_dir,
                **overrides,
            }
        )


@pytest.fixture
def spare_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of the test's own (URL, process), for a test that breaks or reads it
    alone: a broker it can take away, a queue no worker consumes."""
    port = free_port()
    proc = subprocess.Popen(
        redis_server_command(port, tmp_path, persist=False), stdout=subprocess.DEVNULL
    )
    wait_for_port("127.0.0.1", port)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


def migrated_app(tmp_path: Path, redis_url: str, **settings: Any) -> Flask:
    """An in-process testing app over ``redis_url`` and a migrated SQLite file of its own."""
    app = create_app(
        {
            "env": "testing",
            "redis_url": redis_url,
            "database_url": f"sqlite:///{tmp_path / 'jobcast.db'}",
            "storage_dir": tmp_path / "results",
            **settings,
        }
    )
    with app.app_context():
        migrate.upgrade()
    return app


@pytest.fixture(scope="session")
def server_app(stack: Stack) -> Flask:
    """The session stack's settings in an in-process app (see Stack.app)."""
    return stack.app()


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


@pytest.fixture(scope="session")
def stack(
    redis_url: str,
    database_url: str,
    smtp: tuple[int, _Inbox],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Web server and workers (io and cpu pools) over the session's Redis and database."""
    root = tmp_path_factory.mktemp("stack")
    overrides = {
        "JOBCAST_SMTP_HOST": "127.0.0.1",
        "JOBCAST_SMTP_PORT": str(smtp[0]),
        "JOBCAST_EMAIL_RECIPIENTS": "example.com",
        "JOBCAST_IO_CONCURRENCY": "50",
        "JOBCAST_CPU_CONCURRENCY": "2",
        "JOBCAST_JOB_MODULES": "jobcast.service.builtin,tests.integration.jobs",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with Stack(
        root, redis_url=redis_url, database_url=database_url, env_overrides=overrides
    ) as running:
        yield running
        if os.environ.get("JOBCAST_TEST_SHOW_LOGS"):
            for log in sorted(running.logs.iterdir()):
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


#: The provider key the LLM stack's workers send; it must never show anywhere else.
LLM_KEY = "sk-test-0123456789abcdefghijklmnop"


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    """An OpenAI-compatible streaming server (the one thing tests may stand in for)."""
    with FakeProvider(tokens_per_second=1000, api_key=LLM_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def llm_stack(provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own (Redis, SQLite, web, workers) pointed at the fake provider, with
    allowances small enough to reach: 4,000 tokens a day, two LLM jobs at once, a budget of 50
    that one pricey-model run passes."""
    overrides = {
        "JOBCAST_LLM_BASE_URL": provider.url,
        "JOBCAST_LLM_API_KEY": LLM_KEY,
        "JOBCAST_LLM_MODEL": "fake-model",
        "JOBCAST_LLM_MODELS": "fake-model,pricey-model",
        "JOBCAST_LLM_PRICES": "fake-model=0.5/1,pricey-model=1000/1000",
        "JOBCAST_LLM_MONTHLY_BUDGET": "50",
        "JOBCAST_LLM_DAILY_TOKENS": "4000",
        "JOBCAST_LLM_MAX_CONCURRENT": "2",
        "JOBCAST_LLM_TIMEOUT": "2",
        "JOBCAST_IO_CONCURRENCY": "20",
        "JOBCAST_CPU_CONCURRENCY": "1",
        "JOBCAST_LOG_LEVEL": "DEBUG",
        "JOBCAST_JOB_MODULES": "jobcast.service.builtin",
    }
    with Stack(tmp_path_factory.mktemp("llm-stack"), env_overrides=overrides) as running:
        yield running
