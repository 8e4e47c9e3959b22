"""kombu's Redis transport, with one Redis client object per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` for every publish and every acknowledgement
(``Channel.conn_or_acquire``), and redis-py's constructor fills two case-insensitive tables of
response callbacks, ~160 entries each (redis/redis-py#3624): about 90 us per call here, a fifth
of the CPU of ``apply_async`` and a share of every late ack. A ``redis.Redis`` holds no
connection of its own (each command borrows one from the pool, and redis-py documents the
client as safe to share between threads), so one per channel and pool serves every caller.

The blocking consumer client (``asynchronous=True``) is kombu's, unchanged: it keeps one
connection for BRPOP and must not be shared.

It honours ``jobcast.jobs.hold.held_publishes``: a caller takes a message kombu built, routed
and serialized, and pushes it itself: a submission pushes its job's message in the same Lua
script that numbers its ``job.queued`` event, so the two happen together or not at all.
Celery's ``task-sent`` event about that message is held too and published by the same script:
no round trip of its own, and never sent for a message that was not.

Two repairs of kombu's consumer for workers without an event loop (``-P gevent``, Celery's
``synloop``), where a Redis restart left the worker alive and consuming nothing:

- An acknowledgement that fails (the broker is down when a job ends) no longer keeps its
  prefetch slot: kombu's ``QoS.ack`` raised before releasing it, so once every slot of the pool
  was held by such a job ``can_consume()`` stayed false, no BRPOP was ever sent again, and,
  sending nothing, the worker never even noticed the broker had gone (no reconnect). The slot is
  released and the error still raised (Celery logs it); the message stays in Redis's unacked
  set and comes back after the visibility timeout, where the job row makes it a no-op.
- The scan that restores a dead worker's unacknowledged messages runs every
  ``unacked_restore_interval`` here too: kombu runs it only when a poll returns nothing, and an
  outstanding BRPOP (1 s) always answers before the poll's timeout (2 s), so it never ran.

Celery's own tools see a Redis broker: kombu names a connection by its transport
(``Connection.as_uri``), and Flower picks its broker client by that URL's scheme, so this
transport is registered to be named ``redis`` there, as kombu names ``pyamqp`` ``amqp``.
"""

from __future__ import annotations

from queue import Empty
from time import monotonic
from typing import Any
from urllib.parse import urlsplit

from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from jobcast.jobs.hold import holding

#: Broker URL schemes this transport serves; any other broker keeps kombu's own transport.
SCHEMES = frozenset({"redis", "rediss"})

#: Celery's ``broker_transport`` for those schemes.
TRANSPORT = f"{__name__}:Transport"


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, releasing the prefetch slot even when Redis cannot be told."""

    def ack(self, delivery_tag: str) -> None:
        try:
            self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            if requeue:
                self.restore_by_tag(delivery_tag, leftmost=True)
            else:
                self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)


class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    """kombu's poller, restoring expired unacked messages on a clock in the blocking path."""

    _next_restore = 0.0

    def get(self, callback: Any, timeout: float | None = None) -> None:
        try:
            super().get(callback, timeout=timeout)
        except Empty:
            self._restore_when_due()
            raise
        self._restore_when_due()

    def _restore_when_due(self) -> None:
        now = monotonic()
        if now < self._next_restore or not self._channels:
            return
        interval = min(channel.unacked_restore_interval for channel in self._channels)
        self._next_restore = now + max(interval, 1)
        # Catches connection errors itself: a broker that is away is noticed by BRPOP.
        self.maybe_restore_messages()


class Channel(kombu_redis.Channel):
    """A Redis channel whose short-lived clients are one shared client."""

    QoS = QoS
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        # The pool is rebuilt after a disconnect: the client must follow it.
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        held = holding()
        if held is None:
            super()._put(queue, message, **kwargs)
            return
        if self._expires and queue in self._expires:
            raise RuntimeError(f"queue {queue!r} expires: its publishes cannot be held")
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        held.pushes.append((self.global_keyprefix + key, dumps(message)))

    def _put_fanout(
        self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any
    ) -> None:
        held = holding()
        if held is None or kwargs.get("_publish_batch") is not None:
            super()._put_fanout(exchange, message, routing_key, **kwargs)
            return
        payload = dumps(message)
        # Recent kombu may publish to a second, legacy-layout topic too; older has only one.
        if hasattr(self, "_get_publish_topics"):
            topics = self._get_publish_topics(exchange, routing_key)
        else:
            topics = [self._get_publish_topic(exchange, routing_key)]
        held.publishes.extend((topic, payload) for topic in topics)


class Transport(kombu_redis.Transport):
    Channel = Channel
    holds_publishes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = MultiChannelPoller()  # type: ignore[assignment]


def transport_for(broker_url: str) -> str | None:
    """The Celery ``broker_transport`` for ``broker_url``: this module's for Redis, else None
    (kombu picks by the URL's scheme)."""
    if urlsplit(broker_url).scheme in SCHEMES:
        return TRANSPORT
    return None


# Only for display (``Connection.info()``/``as_uri()``; a clone keeps the real class): workers
# then log "Connected to redis://...", and Flower's Broker tab reads the queue lengths instead
# of answering 404. A ``rediss://`` broker shows as ``redis://`` too: Flower then needs
# Celery's ``broker_use_ssl`` to speak TLS.
kombu_connection.resolve_aliases.setdefault(TRANSPORT, "redis")
