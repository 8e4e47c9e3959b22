"""A submission's ``job.queued`` event and its broker message: together, or not at all.

These run the service in-process against a Redis of their own that no worker consumes, so the
queue can be read as the submission left it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from jobcast.db.tables import Job
from jobcast.errors import ServiceUnavailable
from jobcast.jobs import recovery, service
from jobcast.runtime import current_runtime
from jobcast.service.auth.users import create_user
from jobcast.service.extensions import db
from tests.integration.conftest import migrated_app

QUEUE = "jobcast.io"


@pytest.fixture
def owner(tmp_path: Path, spare_redis: tuple[str, Any]) -> Iterator[int]:
    """Inside the context of an app whose Redis is ``spare_redis``: a new user's id."""
    with migrated_app(tmp_path, spare_redis[0]).app_context():
        yield create_user("spare@example.com", "correct horse battery").id


def _messages(redis_url: str) -> list[dict[str, Any]]:
    raw = Redis.from_url(redis_url).lrange(QUEUE, 0, -1)
    return [json.loads(m) for m in raw]


def test_the_message_is_pushed_with_the_queued_event_and_marks_nothing(
    owner: int, spare_redis: tuple[str, Any]
) -> None:
    redis_url, _ = spare_redis
    assert current_runtime().atomic_dispatch
    job, replayed = service.submit(owner, "demo.steps", {"steps": 1}, "req-1")
    assert not replayed
    [message] = _messages(redis_url)
    assert message["headers"]["task"] == "jobcast.run"
    assert message["headers"]["id"] == job.id
    assert message["headers"]["request_id"] == "req-1"
    assert message["properties"]["delivery_info"] == {"exchange": "", "routing_key": QUEUE}
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([job.id], {})
    [(name, event)] = current_runtime().events.history(job.id)
    assert (name, event["seq"]) == ("job.queued", 1)
    db.session.expire_all()
    assert db.session.get(Job, job.id).dispatched_at is None


def test_the_sweeper_marks_an_atomically_sent_job_without_sending_it_again(
    owner: int, spare_redis: tuple[str, Any]
) -> None:
    redis_url, _ = spare_redis
    job, _ = service.submit(owner, "demo.steps", {"steps": 1}, None)
    assert recovery.redispatch_stuck(older_than_seconds=0) == 0
    assert len(_messages(redis_url)) == 1
    db.session.expire_all()
    marked = db.session.get(Job, job.id)
    assert marked.dispatched_at == marked.created_at
    assert recovery.redispatch_stuck(older_than_seconds=0) == 0


def test_redis_down_at_submit_leaves_neither_row_nor_message(
    owner: int, spare_redis: tuple[str, Any]
) -> None:
    _, proc = spare_redis
    proc.kill()
    proc.wait()
    with pytest.raises(ServiceUnavailable):
        service.submit(owner, "demo.steps", {"steps": 1}, None)
    db.session.expire_all()
    assert db.session.query(Job).count() == 0


def test_a_separate_broker_gets_the_message_after_the_event_and_the_row_its_mark(
    tmp_path: Path, spare_redis: tuple[str, Any], redis_url: str
) -> None:
    broker_url, _ = spare_redis
    app = migrated_app(tmp_path, redis_url, broker_url=broker_url)
    with app.app_context():
        assert not current_runtime().atomic_dispatch
        owner = create_user("apart@example.com", "correct horse battery").id
        job, _ = service.submit(owner, "demo.steps", {"steps": 1}, None)
        [message] = _messages(broker_url)
        assert message["headers"]["id"] == job.id
        assert [n for n, _ in current_runtime().events.history(job.id)] == ["job.queued"]
        db.session.expire_all()
        assert db.session.get(Job, job.id).dispatched_at is not None
