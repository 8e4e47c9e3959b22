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

from jobcast.auth.tokens import is_revoked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SocketAuth:
    user_id: int
    claims: dict[str, Any]


class SocketSessions:
    def __init__(self, socketio: SocketIO, redis: Redis, *, per_user: int, every: float) -> None:
        self.socketio = socketio
        self.redis = redis
        self.per_user = per_user
        self.every = every
        self._sockets: dict[str, SocketAuth] = {}
        self._lock = threading.Lock()
        self._watching = False

    def add(self, sid: str, user_id: int, claims: dict[str, Any]) -> bool:
        """Register a socket; False when its user already has ``per_user`` here."""
        with self._lock:
            if sum(1 for s in self._sockets.values() if s.user_id == user_id) >= self.per_user:
                return False
            self._sockets[sid] = SocketAuth(user_id, claims)
            if not self._watching:
                self._watching = True
                self.socketio.start_background_task(self._watch)
        return True

    def remove(self, sid: str) -> None:
        with self._lock:
            self._sockets.pop(sid, None)

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
        for sid, auth in sockets:
            reason = None
            if auth.claims["exp"] <= now:
                reason = "auth.expired"
            else:
                try:
                    if is_revoked(self.redis, auth.claims):
                        reason = "auth.revoked"
                except RedisError:
                    return  # Redis away: decide next time rather than guess now
            if reason is not None:
                self.remove(sid)
                self.socketio.emit(reason, {"reason": reason.split(".")[1]}, to=sid)
                self.socketio.server.disconnect(sid)
