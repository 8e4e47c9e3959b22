"""Socket.IO handlers on the default namespace.

A connection must bring an access token (``auth={"token": ...}`` or an ``Authorization: Bearer``
header) or it is refused. It then joins its user's private room and no other: there is no
handler that lets a client join or leave rooms, so live events reach only their owner.
``job.resume`` replays a job's recorded events to the asking connection alone.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from jobcast.auth.tokens import TokenRejected, access_claims
from jobcast.extensions import db
from jobcast.jobs.events import After, user_room
from jobcast.jobs.models import Job
from jobcast.realtime.sessions import SocketSessions
from jobcast.runtime import current_runtime, runtime_of

log = logging.getLogger(__name__)

MAX_RESUME = 200


class ResumeRequest(BaseModel):
    job_id: str = Field(max_length=36)
    after_seq: int = Field(0, ge=0, lt=2**63)
    # The epoch of the event at after_seq; absent (a client from before epochs): the current.
    epoch: int | None = Field(None, ge=0, lt=2**63)


_resume_requests: TypeAdapter[ResumeRequest | list[ResumeRequest]] = TypeAdapter(
    ResumeRequest | list[ResumeRequest]
)


def _token_from(auth: Any) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def connect(auth: Any = None) -> None:
    token = _token_from(auth)
    if token is None:
        raise ConnectionRefusedError("unauthorized: an access token is required")
    try:
        claims = access_claims(token)
    except TokenRejected as exc:
        raise ConnectionRefusedError(f"unauthorized: {exc}") from None
    user_id = int(claims["sub"])
    if not _sessions().add(request.sid, user_id, claims):  # type: ignore[attr-defined]
        raise ConnectionRefusedError("too many connections for this user")
    join_room(user_room(user_id))


def disconnect(*_reason: Any) -> None:
    _sessions().remove(request.sid)  # type: ignore[attr-defined]


def _sessions() -> SocketSessions:
    sessions: SocketSessions = current_app.extensions["jobcast.sockets"]
    return sessions


def resume(data: Any) -> dict[str, Any]:
    """Replay recorded events after ``(epoch, after_seq)`` for one job or a list of jobs.

    The acknowledgement says how many events were replayed per job, or an error for a job
    that is unknown or not the caller's (nothing is sent for it).
    """
    try:
        asked = _resume_requests.validate_python(data)
    except ValidationError:
        return {"error": "expected {job_id, after_seq} or a list of them"}
    items = asked if isinstance(asked, list) else [asked]
    if len(items) > MAX_RESUME:
        return {"error": f"at most {MAX_RESUME} jobs per job.resume"}
    results = [_replay(item) for item in items]
    return results[0] if not isinstance(asked, list) else {"results": results}


def _replay(item: ResumeRequest) -> dict[str, Any]:
    if not _owned(item.job_id):
        return {"job_id": item.job_id, "error": "not found"}
    after = After(item.after_seq, item.epoch)
    history = current_runtime().events.history(item.job_id, after)
    for name, payload in history:
        # The one recipient is on this process: skip the message queue, which would make
        # every web process read every replayed event.
        emit(name, payload, to=request.sid, ignore_queue=True)  # type: ignore[attr-defined]
    return {"job_id": item.job_id, "replayed": len(history)}


def _owned(job_id: str) -> bool:
    try:
        uuid.UUID(job_id)
    except ValueError:
        return False
    # The connection's user is in the sockets registry; no Flask session is kept per socket.
    user_id = _sessions().user_of(request.sid)  # type: ignore[attr-defined]
    job = db.session.get(Job, job_id)
    return job is not None and user_id is not None and job.owner_id == user_id


def register_handlers(app: Flask, socketio: SocketIO) -> None:
    settings = runtime_of(app).settings
    app.extensions["jobcast.sockets"] = SocketSessions(
        socketio,
        runtime_of(app).redis,
        per_user=settings.max_sockets_per_user,
        every=settings.socket_auth_check_seconds,
    )
    socketio.on_event("connect", connect)
    socketio.on_event("disconnect", disconnect)
    socketio.on_event("job.resume", resume)


def listen_now(socketio: SocketIO) -> None:
    """Subscribe to the message queue at start-up instead of at the first connection.

    python-socketio subscribes lazily; after a restart, clients that reconnect and resume
    at once would otherwise miss the live events published before the subscription is up.
    """
    server = socketio.server
    if server is not None and not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()
