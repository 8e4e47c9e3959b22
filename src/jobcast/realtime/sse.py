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

from flask import Response, stream_with_context

from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.errors import TooManyRequests
from jobcast.identity import Grant
from jobcast.jobs import states
from jobcast.jobs.events import After
from jobcast.runtime import current_runtime
from jobcast.telemetry.metrics import SSE_DELIVERED, SSE_DELIVERY, STREAMS

TERMINAL_EVENTS = frozenset(states.EVENT_FOR_STATE[s] for s in states.TERMINAL)


def last_event_id(header: str | None) -> After:
    """The event a reconnecting client last saw (``id:`` is ``<epoch>-<seq>``; a bare seq from
    an older client means the current epoch); the beginning when absent or malformed."""
    return After.parse(header)


def sse_response(job_id: str, after_seq: int | After, grant: Grant) -> Response:
    """The stream for one job, for the owner ``grant`` names: it ends (after an
    ``auth.expired`` or ``auth.revoked`` event) when the grant stops being valid.
    TooManyRequests when the owner already has their streams open here."""
    rt = current_runtime()
    slots, most = rt.streams, rt.settings.max_streams_per_user
    user_id = grant.owner
    if not slots.take(user_id, most):
        raise TooManyRequests(f"too many open event streams for this user (at most {most})")
    block_ms = int(rt.settings.sse_keepalive_seconds * 1000)
    check_every = rt.settings.socket_auth_check_seconds
    counted = rt.settings.metrics

    opened = time.time()

    def signed_out() -> str | None:
        if grant.expires_at is not None and grant.expires_at <= time.time():
            return "auth.expired"
        if rt.sockets.endings.since([grant.owner]).get(grant.owner, -1.0) >= opened:
            return "auth.revoked"
        if grant.token_id is None:
            return None
        revoked = rt.identity.revoked([grant])
        return "auth.revoked" if revoked and grant.token_id in revoked else None

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
            live, started = started, True
            for name, payload in batch:
                last = After(payload["seq"], payload["epoch"])
                data = json.dumps(payload, separators=(",", ":"))
                yield f"id: {last.event_id()}\nevent: {name}\ndata: {data}\n\n"
                if counted:
                    _count(payload, live)
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
    if counted:
        STREAMS.inc()

    def close() -> None:
        slots.give_back(user_id)
        if counted:
            STREAMS.dec()

    # On close, not in the generator's finally: a response never iterated (the client gone
    # before the first byte) closes without running it.
    response.call_on_close(close)
    return response


def _count(payload: dict[str, object], live: bool) -> None:
    """One event sent; a live one's latency too (the first read's are history)."""
    SSE_DELIVERED.inc()
    ts = payload.get("ts")
    if live and isinstance(ts, float):
        SSE_DELIVERY.observe(max(0.0, time.time() - ts))
