"""kombu's Redis transport, with one Redis client object per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` for every publish and every acknowledgement
(``Channel.conn_or_acquire``), and redis-py's constructor fills two case-insensitive tables of
response callbacks, ~160 entries each (redis/redis-py#3624): about 90 us per call here, a fifth
of the CPU of ``apply_async`` and a share of every late ack. A ``redis.Redis`` holds no
connection of its own (each command borrows one from the pool, and redis-py documents the
client as safe to share between threads), so one per channel and pool serves every caller.

The blocking consumer client (``asynchronous=True``) is kombu's, unchanged: it keeps one
connection for BRPOP and must not be shared.

``held_publishes`` lets a caller take a message kombu built, routed and serialized, and push it
itself in a round trip of its own: a submission pushes its job's message in the same Lua script
that numbers its ``job.queued`` event (``jobcast.jobs.events``), so the two happen together or
not at all. Celery's ``task-sent`` event about that message is held too and published by the
same script: no round trip of its own, and never sent for a message that was not.

Celery's own tools see a Redis broker: kombu names a connection by its transport
(``Connection.as_uri``), and Flower picks its broker client by that URL's scheme, so this
transport is registered to be named ``redis`` there, as kombu names ``pyamqp`` ``amqp``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

#: Broker URL schemes this transport serves; any other broker keeps kombu's own transport.
SCHEMES = frozenset({"redis", "rediss"})

#: Celery's ``broker_transport`` for those schemes.
TRANSPORT = f"{__name__}:Transport"


@dataclass
class Held:
    """What a ``held_publishes`` block would have sent."""

    #: (Redis list key, message) of each message for a queue: the caller LPUSHes them.
    pushes: list[tuple[str, str]] = field(default_factory=list)
    #: (pub/sub channel, message) of each fanout message (Celery events): the caller PUBLISHes.
    publishes: list[tuple[str, str]] = field(default_factory=list)


_held: ContextVar[Held | None] = ContextVar("jobcast_held", default=None)


class Channel(kombu_redis.Channel):
    """A Redis channel whose short-lived clients are one shared client."""

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
        held = _held.get()
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
        held = _held.get()
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


@contextmanager
def held_publishes() -> Iterator[Held]:
    """Publishes through this transport inside the block are not sent: they are collected in
    the yielded ``Held``, for the caller to send."""
    held = Held()
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)


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
