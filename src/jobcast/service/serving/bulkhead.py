"""A cap on the API requests one web process works on at once, so live events never queue
behind a burst of them.

Under gevent a greenlet runs until it waits. A burst of 200 submits puts 200 request greenlets
in the loop, and an event ready to deliver waits until each of them reaches its next wait
(p99 74-211 ms at 200 clients, docs/performance.md). With at most ``limit`` API requests in
progress the others wait on a semaphore, where they are not runnable: an event waits behind at
most ``limit`` of them. The requests were sharing one core either way, so throughput stays the
same, and most finish well before the end of the burst instead of all near it.

A slot covers the app's work, never the client's pace: the request body is read before a slot
is taken (a client that sends slowly waits alone), and the response is sent after it is given
back (SSE streams and downloads do not keep one). Socket.IO's own requests (long-polls,
WebSocket upgrades) last as long as their connection, and the health checks must answer while
the API is busy, so they pass.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from typing import Any

WSGIApp = Any

#: Path prefixes that never wait for a slot.
UNLIMITED = ("/socket.io/", "/healthz", "/readyz")


class ApiBulkhead:
    """WSGI middleware: at most ``limit`` requests in the app at once, except ``UNLIMITED``."""

    def __init__(self, app: WSGIApp, limit: int, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._slots = threading.BoundedSemaphore(limit)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result: Iterable[bytes]
        if environ.get("PATH_INFO", "").startswith(UNLIMITED) or not _read_body_first(
            environ, self.max_body_bytes
        ):
            # Not API work, or a body the app refuses (413, 400) without doing any.
            result = self.app(environ, start_response)
            return result
        with self._slots:
            result = self.app(environ, start_response)
            return result


def _read_body_first(environ: dict[str, Any], limit: int) -> bool:
    """Buffer the request body in ``environ`` before the app runs; False when the declared
    length is over ``limit`` or unreadable, which the app refuses without reading the body.

    A chunked body has no declared length: at most ``limit + 1`` bytes are read, enough for the
    app to see that it is too large. A request with neither has no body, and nothing is read
    (gunicorn marks every input as terminated, so that flag does not tell a body is there).
    """
    declared = environ.get("CONTENT_LENGTH")
    stream = environ.get("wsgi.input")
    if stream is None:
        return True
    if declared:
        try:
            length = int(declared)
        except ValueError:
            return False
        if length > limit:
            return False
        body = stream.read(length) if length > 0 else b""
    elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        body = stream.read(limit + 1)
    else:
        return True  # no body
    environ["wsgi.input"] = io.BytesIO(body)
    return True
