"""The open sockets of this web process: per-user caps, and sign-outs that reach live sockets.

A token is checked when a socket connects, but sockets outlive tokens. One background task per
process looks at every socket each ``socket_auth_check_seconds``: a socket whose access token
has expired or been revoked (logout, refresh-token reuse) is told why (``auth.expired`` /
``auth.revoked``) and disconnected; the client refreshes its token and reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask_socketio import SocketIO
from redis import Redis
from redis.exceptions import RedisError

from jobcast.auth.revocations import revoked_among

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SocketAuth:
    """What the sweep needs of a socket's token: kept per socket, so only these claims."""

    user_id: int
    exp: float
    jti: str
    family: str | None

    @classmethod
    def of(cls, user_id: int, claims: dict[str, Any]) -> SocketAuth:
        return cls(user_id, claims["exp"], claims["jti"], claims.get("fam"))

    def claims(self) -> dict[str, Any]:
        return {"jti": self.jti, "fam": self.family}


class PerUserCount:
    """How many of something (sockets, event streams) each user holds in this process; kept as
    a running count, so taking one costs the same however many are held."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self, user_id: int, most: int) -> bool:
        """One more for ``user_id``; False when they already hold ``most``."""
        with self._lock:
            held = self._held.get(user_id, 0)
            if held >= most:
                return False
            self._held[user_id] = held + 1
            return True

    def give_back(self, user_id: int) -> None:
        with self._lock:
            left = self._held.pop(user_id, 1) - 1
            if left:
                self._held[user_id] = left


class SocketSessions:
    def __init__(self, socketio: SocketIO, redis: Redis, *, per_user: int, every: float) -> None:
        self.socketio = socketio
        self.redis = redis
        self.per_user = per_user
        self.every = every
        self._sockets: dict[str, SocketAuth] = {}
        self._per_user = PerUserCount()
        self._lock = threading.Lock()
        self._watching = False

    def add(self, sid: str, user_id: int, claims: dict[str, Any]) -> bool:
        """Register a socket; False when its user already has ``per_user`` here."""
        if not self._per_user.take(user_id, self.per_user):
            return False
        with self._lock:
            self._sockets[sid] = SocketAuth.of(user_id, claims)
            if not self._watching:
                self._watching = True
                self.socketio.start_background_task(self._watch)
        return True

    def remove(self, sid: str) -> None:
        with self._lock:
            auth = self._sockets.pop(sid, None)
        if auth is not None:
            self._per_user.give_back(auth.user_id)

    def user_of(self, sid: str) -> int | None:
        found = self._sockets.get(sid)
        return found.user_id if found else None

    def _watch(self) -> None:
        while True:
            self.socketio.sleep(self.every)
            try:
                self.sweep()
            except Exception:  # keep watching: one bad sweep must not end the checks
                log.exception("socket token sweep failed")

    def sweep(self) -> None:
        """Disconnect every socket whose token expired or was revoked."""
        with self._lock:
            sockets = list(self._sockets.items())
        now = time.time()
        live = [auth.claims() for _, auth in sockets if auth.exp > now]
        try:
            revoked = revoked_among(self.redis, live)
        except RedisError:
            revoked = None  # Redis away: decide on revocation next time rather than guess now
        for sid, auth in sockets:
            if auth.exp <= now:
                reason = "auth.expired"
            elif revoked is not None and auth.jti in revoked:
                reason = "auth.revoked"
            else:
                continue
            self.remove(sid)
            self.socketio.emit(reason, {"reason": reason.split(".")[1]}, to=sid)
            self.socketio.server.disconnect(sid)
