"""A cap on the API requests one web process works on at once, so live events never queue
behind a burst of them.

Under gevent a greenlet runs until it waits. A burst of 200 submits puts 200 request greenlets
in the loop, and an event ready to deliver waits until each of them reaches its next wait
(p99 74-211 ms at 200 clients, docs/performance.md). With at most ``limit`` API requests in
progress the others wait on a semaphore, where they are not runnable: an event waits behind at
most ``limit`` of them. The requests were sharing one core either way, so throughput stays the
same, and they finish in the order they came instead of all near the end of the burst.

Socket.IO's own requests (long-polls, WebSocket upgrades) last as long as their connection and
are not API work, so they pass. The slot is held while the app builds its response, not while
the server sends it: streamed responses (SSE, downloads) do not keep it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

WSGIApp = Any


class ApiBulkhead:
    """WSGI middleware: at most ``limit`` requests outside ``socketio_path`` in the app at once."""

    def __init__(self, app: WSGIApp, limit: int, socketio_path: str = "/socket.io/") -> None:
        self.app = app
        self.socketio_path = socketio_path
        self._slots = threading.BoundedSemaphore(limit)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(self.socketio_path):
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        with self._slots:
            result = self.app(environ, start_response)
            return result
