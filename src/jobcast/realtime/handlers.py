"""Socket.IO handlers on the default namespace.

A connection must bring an access token (``auth={"token": ...}`` or an ``Authorization: Bearer``
header) or it is refused. It then joins its user's private room and no other: there is no
handler that lets a client join or leave rooms, so events reach only their owner.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import SocketIO, join_room

from jobcast.auth.tokens import TokenRejected, user_id_from_access_token
from jobcast.jobs.events import user_room

log = logging.getLogger(__name__)


def _token_from(auth: Any) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def register_handlers(socketio: SocketIO) -> None:
    @socketio.on("connect")
    def connect(auth: Any = None) -> None:
        token = _token_from(auth)
        if token is None:
            raise ConnectionRefusedError({"message": "unauthorized: an access token is required"})
        try:
            user_id = user_id_from_access_token(token)
        except TokenRejected as exc:
            raise ConnectionRefusedError({"message": f"unauthorized: {exc}"}) from None
        join_room(user_room(user_id))
        log.debug("socket %s connected for user %s", request.sid, user_id)  # type: ignore[attr-defined]
