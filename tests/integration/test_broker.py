"""jobcast's Redis transport: kombu's, sharing one client object per channel (jobcast.broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Queue

from jobcast.broker import Channel, transport_for
from jobcast.config import celery_config, load_settings


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Celery]:
    queue = f"test-broker-{uuid.uuid4().hex[:8]}"
    app = Celery("test-broker", broker=redis_url)
    app.conf.broker_transport = transport_for(redis_url)
    app.conf.task_queues = [Queue(queue)]
    app.conf.task_default_queue = queue
    yield app
    redis.Redis.from_url(redis_url).delete(queue)
    app.close()


def _count_clients(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    built = [0]
    init = redis.Redis.__init__

    def counting(self: redis.Redis, *args: object, **kwargs: object) -> None:
        built[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    return built


def test_redis_brokers_get_the_shared_client_transport() -> None:
    assert transport_for("redis://127.0.0.1:6379/0") == "jobcast.broker:Transport"
    assert transport_for("rediss://cache.example:6380/1") == "jobcast.broker:Transport"
    assert transport_for("amqp://guest@mq//") is None
    config = celery_config(load_settings({"broker_url": "amqp://guest@mq//"}))
    assert config["broker_transport"] is None


def test_publishes_share_one_client_and_still_reach_the_queue(
    celery_app: Celery, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with celery_app.connection_for_write() as connection:
        assert isinstance(connection.default_channel, Channel)
    celery_app.send_task("test.noop", args=[0])  # the first publish builds the client
    built = _count_clients(monkeypatch)
    for n in range(1, 51):
        celery_app.send_task("test.noop", args=[n])
    assert built[0] == 0, "a publish built a Redis client of its own"
    queue = celery_app.conf.task_default_queue
    assert redis.Redis.from_url(redis_url).llen(queue) == 51


def test_the_shared_client_follows_a_rebuilt_pool(celery_app: Celery) -> None:
    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        channel._pool = None  # what kombu does after losing the connection
        second = channel._create_client()
        assert second is not first
        assert second.connection_pool is channel.pool
        assert second.ping()
        blocking = channel._create_client(asynchronous=True)
        assert blocking is not second, "the BRPOP client must stay the consumer's own"
