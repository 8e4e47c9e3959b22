"""The open sockets of this web process: per-user caps, and sign-outs that reach live sockets.

The identity grants a socket when it connects, but sockets outlive credentials. One background
task per process looks at every socket each ``socket_auth_check_seconds``: a socket whose grant
has expired, that the identity says was revoked (logout, refresh-token reuse), or whose owner
the app ended (``Jobcast.disconnect``, on any web process: ``Endings``) is told why
(``auth.expired`` / ``auth.revoked``) and disconnected; the client refreshes its credential and
reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection

from flask import Flask
from flask_socketio import SocketIO
from prometheus_client import Gauge
from redis import Redis
from redis.exceptions import RedisError

from jobcast.identity import Grant, Identity

log = logging.getLogger(__name__)


class PerUserCount:
    """How many of something (sockets, event streams) each user holds in this process; kept as
    a running count, so taking one costs the same however many are held."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, user_id: str, most: int) -> bool:
        """One more for ``user_id``; False when they already hold ``most``."""
        with self._lock:
            held = self._held.get(user_id, 0)
            if held >= most:
                return False
            self._held[user_id] = held + 1
            return True

    def give_back(self, user_id: str) -> None:
        with self._lock:
            left = self._held.pop(user_id, 1) - 1
            if left:
                self._held[user_id] = left


class Endings:
    """Owners whose live connections the app ended, told to every web process through Redis:
    each marks when, and a connection made before that ends at its process's next sweep."""

    def __init__(self, redis: Redis, keep_seconds: float) -> None:
        self.redis = redis
        self.keep_seconds = max(60, int(keep_seconds))

    def end(self, owner: str) -> None:
        self.redis.set(_ended_key(owner), repr(time.time()), ex=self.keep_seconds)

    def since(self, owners: list[str]) -> dict[str, float]:
        """When each of ``owners`` was last ended (those never ended are left out)."""
        if not owners:
            return {}
        marks: list[str | None] = self.redis.mget([_ended_key(o) for o in owners])  # type: ignore[assignment]
        return {owner: float(mark) for owner, mark in zip(owners, marks, strict=True) if mark}


def _ended_key(owner: str) -> str:
    return f"jobcast:ended:{owner}"


class SocketSessions:
    #: Counts the open sockets when the app's metrics are on (``telemetry.metrics``).
    gauge: Gauge | None = None

    def __init__(
        self,
        app: Flask,
        socketio: SocketIO,
        identity: Identity,
        endings: Endings,
        *,
        namespace: str,
        per_user: int,
        every: float,
    ) -> None:
        self.app = app
        self.socketio = socketio
        self.identity = identity
        self.endings = endings
        self.namespace = namespace
        self.per_user = per_user
        self.every = every
        self._sockets: dict[str, Grant] = {}
        self._since: dict[str, float] = {}
        self._per_user = PerUserCount()
        self._lock = threading.Lock()
        self._watching = False

    def add(self, sid: str, grant: Grant) -> bool:
        """Register a socket; False when its owner already has ``per_user`` here."""
        if not self._per_user.take(grant.owner, self.per_user):
            return False
        with self._lock:
            self._sockets[sid] = grant
            self._since[sid] = time.time()
            if not self._watching:
                self._watching = True
                self.socketio.start_background_task(self._watch)
        if self.gauge is not None:
            self.gauge.inc()
        return True

    def remove(self, sid: str) -> None:
        with self._lock:
            auth = self._sockets.pop(sid, None)
            self._since.pop(sid, None)
        if auth is not None:
            self._per_user.give_back(auth.owner)
            if self.gauge is not None:
                self.gauge.dec()

    def owner_of(self, sid: str) -> str | None:
        found = self._sockets.get(sid)
        return found.owner if found else None

    def sids_of(self, owner: str) -> list[str]:
        with self._lock:
            return [sid for sid, grant in self._sockets.items() if grant.owner == owner]

    def _watch(self) -> None:
        while True:
            self.socketio.sleep(self.every)
            try:
                with self.app.app_context():  # the identity's revocation check may need it
                    self.sweep()
            except Exception:  # keep watching: one bad sweep must not end the checks
                log.exception("socket token sweep failed")

    def sweep(self) -> None:
        """Disconnect every socket whose grant expired, was revoked or whose owner was ended."""
        with self._lock:
            sockets = [
                (sid, grant, self._since.get(sid, 0.0)) for sid, grant in self._sockets.items()
            ]
        now = time.time()
        live = [grant for _, grant, _ in sockets if not _expired(grant, now)]
        # None: the identity cannot tell now (its store is away); decide next time, not guess.
        revoked = self.identity.revoked(live) if live else ()
        try:
            ended = self.endings.since(sorted({grant.owner for grant in live}))
        except RedisError:
            ended = {}  # Redis away: the next sweep asks again
        for sid, grant, since in sockets:
            if _expired(grant, now):
                reason = "auth.expired"
            elif _revoked(grant, revoked) or ended.get(grant.owner, -1.0) >= since:
                reason = "auth.revoked"
            else:
                continue
            self.end(sid, reason)

    def end(self, sid: str, reason: str) -> None:
        """Tell one socket why (``auth.<why>``), then disconnect it."""
        self.remove(sid)
        self.socketio.emit(
            reason, {"reason": reason.split(".")[1]}, to=sid, namespace=self.namespace
        )
        self.socketio.server.disconnect(sid, namespace=self.namespace)


def _revoked(grant: Grant, revoked: Collection[str] | None) -> bool:
    return revoked is not None and grant.token_id is not None and grant.token_id in revoked


def _expired(grant: Grant, now: float) -> bool:
    return grant.expires_at is not None and grant.expires_at <= now
