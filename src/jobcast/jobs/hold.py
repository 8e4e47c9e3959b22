"""Holding a submission's broker message, so its own event script can push it.

Inside ``held_publishes`` a Celery transport that honours holds (``holds_publishes = True`` on
its class: the service's Redis transport) does not send what kombu built, routed and serialized:
it collects it in a ``Held`` for the caller, which pushes the job's message in the same Lua
script that numbers its ``job.queued`` event (``jobs.redis_events``), so the two happen together
or not at all. Any other transport (a host's own Celery) sends as usual, and the submission
takes the plain path: event, message, then the mark that it was sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache

from kombu.transport import resolve_transport


@dataclass
class Held:
    """What a ``held_publishes`` block would have sent."""

    #: (Redis list key, message) of each message for a queue: the caller LPUSHes them.
    pushes: list[tuple[str, str]] = field(default_factory=list)
    #: (pub/sub channel, message) of each fanout message (Celery events): the caller PUBLISHes.
    publishes: list[tuple[str, str]] = field(default_factory=list)


_held: ContextVar[Held | None] = ContextVar("jobcast_held", default=None)


@contextmanager
def held_publishes() -> Iterator[Held]:
    """Publishes through a holding transport inside the block are not sent: they are collected
    in the yielded ``Held``, for the caller to send."""
    held = Held()
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)


def holding() -> Held | None:
    """The ``Held`` of the block in progress, for a transport to fill; None outside one."""
    return _held.get()


@cache
def honours_holds(transport: str | None) -> bool:
    """Whether Celery's ``broker_transport`` setting names a transport that holds publishes."""
    if not transport:
        return False
    try:
        transport_class = resolve_transport(transport)
    except (ImportError, AttributeError, KeyError, ValueError):
        return False
    return bool(getattr(transport_class, "holds_publishes", False))
