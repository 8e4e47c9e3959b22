"""Server-Sent Events for one job: its recorded history, then live events, until it ends.

Read straight from the job's durable event log (Redis Streams, XREAD BLOCK), so an SSE client
gets exactly what a Socket.IO client gets, in order, and ``Last-Event-ID`` resumes after a
reconnect with nothing lost or repeated. Each open stream holds a greenlet (or thread) and a
blocking Redis read, so a user may hold at most ``max_streams_per_user`` of them per web
process, as with sockets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, stream_with_context

from jobcast.auth.revocations import is_revoked
from jobcast.errors import TooManyRequests
from jobcast.extensions import db
from jobcast.jobs import states
from jobcast.jobs.events import After
from jobcast.jobs.models import Job
from jobcast.realtime.sessions import PerUserCount
from jobcast.runtime import current_runtime

TERMINAL_EVENTS = frozenset(states.EVENT_FOR_STATE[s] for s in states.TERMINAL)


def last_event_id(header: str | None) -> After:
    """The event a reconnecting client last saw (``id:`` is ``<epoch>-<seq>``; a bare seq from
    an older client means the current epoch); the beginning when absent or malformed."""
    return After.parse(header)


def _open_streams() -> PerUserCount:
    return current_app.extensions.setdefault("jobcast.sse_streams", PerUserCount())


def sse_response(
    job_id: str, after_seq: int | After, user_id: int, claims: dict[str, Any]
) -> Response:
    """The stream for one job, for ``user_id`` holding the access token with ``claims``: it
    ends (after an ``auth.expired`` or ``auth.revoked`` event) when that token stops being
    valid. TooManyRequests when the user already has their streams open here."""
    rt = current_runtime()
    slots, most = _open_streams(), rt.settings.max_streams_per_user
    if not slots.take(user_id, most):
        raise TooManyRequests(f"too many open event streams for this user (at most {most})")
    block_ms = int(rt.settings.sse_keepalive_seconds * 1000)
    check_every = rt.settings.socket_auth_check_seconds

    def signed_out() -> str | None:
        if claims["exp"] <= time.time():
            return "auth.expired"
        return "auth.revoked" if is_revoked(rt.redis, claims) else None

    def stream() -> Iterator[str]:
        yield "retry: 2000\n\n"
        last = after_seq if isinstance(after_seq, After) else After(after_seq, None)
        checked = time.monotonic()
        started = False
        while True:
            if time.monotonic() - checked >= check_every:
                checked = time.monotonic()
                reason = signed_out()
                if reason:
                    yield f"event: {reason}\ndata: {json.dumps({'reason': reason[5:]})}\n\n"
                    return
            # The first read does not wait: a finished job with nothing left to send ends now.
            batch = rt.events.history(job_id, last, block_ms=block_ms if started else None)
            started = True
            for name, payload in batch:
                last = After(payload["seq"], payload["epoch"])
                data = json.dumps(payload, separators=(",", ":"))
                yield f"id: {last.event_id()}\nevent: {name}\ndata: {data}\n\n"
                if name in TERMINAL_EVENTS:
                    return
            if not batch:
                # Nothing new (for a whole keep-alive period, after the first read): end if
                # the job is over (its log may have expired), else keep proxies from closing.
                db.session.expire_all()
                job = db.session.get(Job, job_id)
                if job is None or job.status in states.TERMINAL:
                    return
                yield ": keep-alive\n\n"

    response = Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # On close, not in the generator's finally: a response never iterated (the client gone
    # before the first byte) closes without running it.
    response.call_on_close(lambda: slots.give_back(user_id))
    return response
