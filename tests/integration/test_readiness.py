"""Readiness follows Redis: /readyz says 503 while Redis is down, /healthz stays 200.

Uses a small stack of its own (its own Redis, web only) so stopping Redis here cannot disturb
the session's shared stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from jobcast.service.procs import redis_server_command, wait_for_port
from jobcast.service.testing import LocalStack
from tests.integration.support import Api


@pytest.fixture
def small_stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(tmp_path, redis_url=None, worker_pools=()) as stack:
        yield stack


def _ready(stack: LocalStack) -> requests.Response:
    return requests.get(stack.base_url + "/readyz", timeout=10)


def _stop_redis(stack: LocalStack) -> None:
    redis = stack.process("redis")
    redis.kill()
    redis.wait(timeout=10)


def test_readyz_is_200_while_database_and_redis_answer(small_stack: LocalStack) -> None:
    response = _ready(small_stack)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_naming_redis_when_redis_is_down(small_stack: LocalStack) -> None:
    _stop_redis(small_stack)
    started = time.monotonic()
    response = _ready(small_stack)
    assert time.monotonic() - started < 5, "the probe must answer quickly, not hang on Redis"
    assert response.status_code == 503
    assert response.headers["Content-Type"].split(";")[0] in (
        "application/json",
        "application/problem+json",
    )
    body = response.json()
    assert body["checks"] == {"database": "ok", "redis": "unavailable"}
    assert body["status"] != "ready"


def test_healthz_stays_200_while_redis_is_down(small_stack: LocalStack) -> None:
    _stop_redis(small_stack)
    response = requests.get(small_stack.base_url + "/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_recovers_when_redis_comes_back(small_stack: LocalStack) -> None:
    _stop_redis(small_stack)
    assert _ready(small_stack).status_code == 503
    assert small_stack.redis_url is not None
    port = urlsplit(small_stack.redis_url).port
    assert port is not None
    small_stack.start_process("redis", redis_server_command(port, small_stack.root, persist=False))
    wait_for_port("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while (response := _ready(small_stack)).status_code != 200:
        assert time.monotonic() < deadline, f"still {response.status_code}: {response.text}"
        time.sleep(0.2)
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/jobs", None),
        ("POST", "/api/v1/jobs", {"type": "demo.steps", "params": {}}),
    ],
)
def test_api_calls_answer_503_with_retry_after_while_redis_is_down(
    small_stack: LocalStack, method: str, path: str, body: dict[str, object] | None
) -> None:
    """A dependency outage is "try again shortly" (503), not a server bug (500)."""
    api = Api(small_stack.base_url).signup()
    _stop_redis(small_stack)
    response = api.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) > 0
