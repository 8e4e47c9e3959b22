"""Celery's own tools see jobs: Flower, ``celery inspect`` and the broker messages name each job
by its type and id, with bounded arguments that never carry the params' values, and Flower's
Broker tab reads jobcast's broker."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from flask import Flask
from redis import Redis

from jobcast.celery_settings import celery_config
from jobcast.config import load_settings
from jobcast.jobs import service
from jobcast.service.auth.users import create_user
from jobcast.service.procs import free_port
from tests.integration.conftest import Stack, migrated_app
from tests.integration.support import Api

needs_flower = pytest.mark.skipif(
    importlib.util.find_spec("flower") is None,
    reason="Flower is not installed (pip install 'jobcast[flower]')",
)

T = TypeVar("T")


def _eventually(probe: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """``probe()``'s first result that is not None, polled for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)


@pytest.fixture
def flower_url(stack: Stack) -> Iterator[str]:
    """``jobcast flower`` on a free port against the stack's broker, once it has heard a worker's
    heartbeat: from then on it receives every task event."""
    port = free_port()
    proc = stack.start_process(
        f"flower-{port}",
        [sys.executable, "-m", "jobcast", "flower", "--port", str(port)],
        # Flower's HTTP API answers without a login only when told to.
        {"FLOWER_UNAUTHENTICATED_API": "true"},
    )
    url = f"http://127.0.0.1:{port}"

    def heard_a_worker() -> bool | None:
        if proc.poll() is not None:
            raise AssertionError(f"flower exited with {proc.returncode}: see {stack.logs}")
        try:
            metrics = requests.get(url + "/metrics", timeout=2).text
        except requests.RequestException:
            return None
        online = [line for line in metrics.splitlines() if line.startswith("flower_worker_online")]
        return True if any(line.endswith(" 1.0") for line in online) else None

    try:
        _eventually(heard_a_worker, "flower hearing a worker's heartbeat", timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@needs_flower
def test_flower_lists_a_finished_job_under_its_type_and_reads_the_broker(
    flower_url: str, api: Api, server_app: Flask
) -> None:
    job = api.submit("demo.steps", {"steps": 15, "step_ms": 100})
    flaky = api.submit("test.flaky", {"failures": 1})

    # While it runs, `celery inspect active` names its type; `--safe` shows what logs show.
    inspect = server_app.extensions["celery"].control.inspect(timeout=2)

    def running() -> dict[str, Any] | None:
        for tasks in (inspect.active(safe=True) or {}).values():
            for task in tasks:
                if task["id"] == job["id"]:
                    return dict(task)
        return None

    active = _eventually(running, "the job in `celery inspect active`")
    assert active["name"] == "demo.steps" and active["type"] == "jobcast.run"
    assert active["args"] == f"['{job['id']}']"
    assert "'params': ['steps', 'step_ms']" in active["kwargs"]

    assert api.wait_job(job["id"])["status"] == "succeeded"

    def listed(job_id: str) -> Callable[[], dict[str, Any] | None]:
        def probe() -> dict[str, Any] | None:
            tasks = requests.get(flower_url + "/api/tasks", timeout=5).json()
            task = tasks.get(job_id)
            return task if task and task["state"] == "SUCCESS" else None

        return probe

    task = _eventually(listed(job["id"]), "the finished job in Flower's /api/tasks")
    assert task["name"] == "demo.steps"
    assert task["uuid"] == job["id"]
    assert task["args"] == f"['{job['id']}']"
    assert task["kwargs"].startswith("{'owner_id': ")
    # A retried job's new message is shown as its first one was.
    assert api.wait_job(flaky["id"])["attempts"] == 2
    task = _eventually(listed(flaky["id"]), "the retried job in Flower's /api/tasks")
    assert (task["name"], task["args"]) == ("test.flaky", f"['{flaky['id']}']")
    assert task["kwargs"].endswith("'params': ['failures']}")
    assert (
        "demo.steps" in requests.get(flower_url + "/api/task/types", timeout=5).json()["task-types"]
    )

    # The Broker tab, and the API behind it: queue lengths read from Redis, not a 404.
    lengths = requests.get(flower_url + "/api/queues/length", timeout=5)
    assert lengths.status_code == 200, lengths.text
    names = {queue["name"] for queue in lengths.json()["active_queues"]}
    assert {"jobcast.io", "jobcast.cpu"} <= names
    broker = requests.get(flower_url + "/broker", timeout=5)
    assert broker.status_code == 200, broker.text
    assert "jobcast.io" in broker.text


@pytest.fixture
def spare_app(tmp_path: Path, spare_redis: tuple[str, Any]) -> Iterator[Flask]:
    """An in-process app over a Redis no worker consumes, inside its app context."""
    app = migrated_app(tmp_path, spare_redis[0])
    with app.app_context():
        yield app


def test_the_broker_message_names_the_type_and_never_shows_param_values(
    spare_app: Flask, spare_redis: tuple[str, Any]
) -> None:
    redis = Redis.from_url(spare_redis[0])
    events = redis.pubsub(ignore_subscribe_messages=True)
    events.psubscribe("*celeryev*")
    owner = create_user("tooling@example.com", "correct horse battery").id
    secret = "hunter2-" * 20
    job, _ = service.submit(
        owner, "email.send", {"to": "tooling@example.com", "subject": secret, "body": secret}, None
    )
    [raw] = redis.lrange("jobcast.io", 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["task"] == "jobcast.run" and headers["shadow"] == "email.send"
    assert headers["id"] == job.id
    assert headers["argsrepr"] == f"['{job.id}']"
    assert headers["kwargsrepr"] == f"{{'owner_id': {owner}, 'params': ['to', 'subject', 'body']}}"
    assert "hunter2" not in json.dumps(headers)

    # Celery's task-sent event, published by the same script that pushed the message.
    message = _eventually(lambda: events.get_message(timeout=1), "the task-sent event", 10)
    events.close()
    sent = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
    assert (sent["type"], sent["name"], sent["uuid"]) == ("task-sent", "email.send", job.id)
    assert (sent["args"], sent["kwargs"]) == (headers["argsrepr"], headers["kwargsrepr"])


@needs_flower
def test_flowers_broker_client_reads_the_queues_of_jobcasts_broker_url(
    spare_app: Flask, spare_redis: tuple[str, Any]
) -> None:
    """Flower picks its broker client by the scheme of the URL kombu reports for Celery's
    connection; jobcast's transport must report ``redis://``."""
    from flower.utils.broker import Broker
    from flower.utils.broker import Redis as FlowerRedis

    redis_url = spare_redis[0]
    Redis.from_url(redis_url).lpush("jobcast.cpu", "x", "y")
    celery = spare_app.extensions["celery"]
    with celery.connection() as conn:
        assert type(conn.transport).__module__ == "jobcast.service.serving.broker"
        uri = conn.as_uri(include_password=True)
    assert uri == redis_url
    broker = Broker(uri, broker_options=celery.conf.broker_transport_options)
    assert isinstance(broker, FlowerRedis)
    # A thread of its own: the browser tests' Playwright keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        queues = pool.submit(asyncio.run, broker.queues(["jobcast.io", "jobcast.cpu"])).result()
    assert {q["name"]: q["messages"] for q in queues} == {"jobcast.io": 0, "jobcast.cpu": 2}


@pytest.mark.parametrize(("value", "on"), [("true", True), ("false", False)])
def test_task_events_follow_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, on: bool
) -> None:
    monkeypatch.setenv("JOBCAST_TASK_EVENTS", value)
    config = celery_config(load_settings({"env": "testing"}))
    assert config["worker_send_task_events"] is on
    assert config["task_send_sent_event"] is on


def test_jobcast_flower_says_what_to_install_when_flower_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from jobcast.service.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "flower" else real_find_spec(name, *args),
    )
    result = CliRunner().invoke(main, ["flower"])
    assert result.exit_code == 1
    assert "pip install 'jobcast[flower]'" in result.output
