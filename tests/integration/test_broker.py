"""The service's Redis transport: kombu's, sharing one client object per channel."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Queue
from kombu.message import Message

from jobcast.service.serving.broker import Channel, transport_for


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
    transport = "jobcast.service.serving.broker:Transport"
    assert transport_for("redis://127.0.0.1:6379/0") == transport
    assert transport_for("rediss://cache.example:6380/1") == transport
    assert transport_for("amqp://guest@mq//") is None


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


def test_a_failed_ack_still_frees_its_prefetch_slot(celery_app: Celery) -> None:
    """A job that ends while Redis is away must not keep its slot: with every slot held that
    way the consumer would never send BRPOP again, nor notice that the broker came back."""
    celery_app.send_task("test.noop")
    received: list[Message] = []
    with celery_app.connection_for_read() as connection:
        queue = Queue(celery_app.conf.task_default_queue)
        with connection.Consumer(queue, callbacks=[lambda _b, m: received.append(m)]) as consumer:
            consumer.qos(prefetch_count=1)
            connection.drain_events(timeout=5)
            qos = consumer.channel.qos
            assert not qos.can_consume()

            def broken(*_: object) -> None:
                raise redis.ConnectionError("the broker is away")

            qos._remove_from_indices = broken
            with pytest.raises(redis.ConnectionError):
                received[0].ack()
            assert qos.can_consume(), "the failed ack kept its prefetch slot"


def test_a_blocking_consumer_restores_a_dead_workers_messages(redis_url: str) -> None:
    """drain_events (the gevent pool's loop) runs the restore scan on its clock: kombu's own
    runs only when a poll finds nothing, which BRPOP's 1 s answer never lets happen."""
    queue = f"test-restore-{uuid.uuid4().hex[:8]}"
    app = Celery("test-restore", broker=redis_url)
    app.conf.broker_transport = transport_for(redis_url)
    app.conf.broker_transport_options = {
        "visibility_timeout": 10,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    app.conf.task_queues = [Queue(queue)]
    app.conf.task_default_queue = queue
    server = redis.Redis.from_url(redis_url)
    try:
        app.send_task("test.orphan")
        raw = server.rpop(queue)
        assert raw is not None
        message = json.loads(raw)
        tag = message["properties"]["delivery_tag"]
        # What a worker killed mid-job leaves: its message unacked, delivered long ago.
        server.zadd("unacked_index", {tag: time.time() - 60})
        server.hset("unacked", tag, json.dumps([message, "", queue]))
        received: list[Message] = []
        with app.connection_for_read() as connection:
            on_message = [lambda _b, m: received.append(m)]
            with connection.Consumer(Queue(queue), callbacks=on_message):
                deadline = time.monotonic() + 8
                while not received and time.monotonic() < deadline:
                    with contextlib.suppress(socket.timeout):
                        connection.drain_events(timeout=2)
        assert [m.delivery_tag for m in received] == [tag]
    finally:
        server.delete(queue, "unacked", "unacked_index")
        app.close()
