"""Socket.IO handlers on jobcast's namespace, and nowhere else.

A connection must be granted by the app's identity (a session cookie, an access token in
``auth={"token": ...}``...) or it is refused. It then joins its owner's private room and no
other: there is no handler that lets a client join or leave rooms, so live events reach only
their owner. ``job.resume`` replays a job's recorded events to the asking connection alone.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.errors import Unauthorized
from jobcast.jobs.events import After
from jobcast.realtime.sessions import SocketSessions
from jobcast.realtime.wire import user_room
from jobcast.runtime import current_runtime
from jobcast.telemetry.metrics import SOCKET_DELIVERED

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


def connect(auth: Any = None) -> None:
    try:
        grant = current_runtime().identity.connection_grant(auth)
    except Unauthorized as exc:
        raise ConnectionRefusedError(f"unauthorized: {exc.detail}") from None
    if grant is None:
        raise ConnectionRefusedError("unauthorized: sign in first")
    if not _sessions().add(request.sid, grant):  # type: ignore[attr-defined]
        raise ConnectionRefusedError("too many connections for this user")
    join_room(user_room(grant.owner))


def disconnect(*_reason: Any) -> None:
    _sessions().remove(request.sid)  # type: ignore[attr-defined]


def _sessions() -> SocketSessions:
    return current_runtime().sockets


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
    rt = current_runtime()
    history = rt.events.history(item.job_id, after)
    for name, payload in history:
        # The one recipient is on this process: skip the message queue, which would make
        # every web process read every replayed event.
        emit(name, payload, to=request.sid, ignore_queue=True)  # type: ignore[attr-defined]
    if history and rt.settings.metrics:
        SOCKET_DELIVERED.inc(len(history))
    return {"job_id": item.job_id, "replayed": len(history)}


def _owned(job_id: str) -> bool:
    try:
        uuid.UUID(job_id)
    except ValueError:
        return False
    # The connection's user is in the sockets registry; no Flask session is kept per socket.
    owner = _sessions().owner_of(request.sid)  # type: ignore[attr-defined]
    job = db.session.get(Job, job_id)
    return job is not None and owner is not None and job.owner_id == owner


def register_handlers(socketio: SocketIO, namespace: str) -> None:
    """Handle jobcast's events on ``namespace`` only: a host's own handlers stay its own."""
    socketio.on_event("connect", connect, namespace=namespace)
    socketio.on_event("disconnect", disconnect, namespace=namespace)
    socketio.on_event("job.resume", resume, namespace=namespace)


def listen_now(socketio: SocketIO) -> None:
    """Subscribe to the message queue at start-up instead of at the first connection.

    python-socketio subscribes lazily; after a restart, clients that reconnect and resume
    at once would otherwise miss the live events published before the subscription is up.
    """
    server = socketio.server
    if server is not None and not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()
