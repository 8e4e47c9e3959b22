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
not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

#: Broker URL schemes this transport serves; any other broker keeps kombu's own transport.
SCHEMES = frozenset({"redis", "rediss"})

_held: ContextVar[list[tuple[str, str]] | None] = ContextVar("jobcast_held", default=None)


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
        held.append((self.global_keyprefix + key, dumps(message)))


class Transport(kombu_redis.Transport):
    Channel = Channel


@contextmanager
def held_publishes() -> Iterator[list[tuple[str, str]]]:
    """Publishes through this transport inside the block are not sent: each one's Redis list
    key and message are collected in the yielded list, for the caller to LPUSH."""
    held: list[tuple[str, str]] = []
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)


def transport_for(broker_url: str) -> str | None:
    """The Celery ``broker_transport`` for ``broker_url``: this module's for Redis, else None
    (kombu picks by the URL's scheme)."""
    if urlsplit(broker_url).scheme in SCHEMES:
        return f"{__name__}:Transport"
    return None
