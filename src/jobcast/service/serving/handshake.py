"""WebSocket handshakes without permessage-deflate.

Browsers offer permessage-deflate on every WebSocket, and simple-websocket (the server side
Flask-SocketIO uses) accepts whatever is offered. jobcast's frames are small JSON events: deflate
saves a few bytes each while costing a zlib stream per connection (its memory, and a compress
call per frame per client, paid once for every member of a room). Removing the offer from the
request before the server sees it keeps every frame plain; clients need no change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

WSGIApp = Any


class PlainWebSockets:
    """WSGI middleware: drop the client's WebSocket extension offer on upgrade requests."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        result: Iterable[bytes] = self.app(environ, start_response)
        return result
