"""Server-Sent Events for one job: its recorded history, then live events, until it ends.

Read straight from the job's durable event log (Redis Streams, XREAD BLOCK), so an SSE client
gets exactly what a Socket.IO client gets, in order, and ``Last-Event-ID`` resumes after a
reconnect with nothing lost or repeated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Response, stream_with_context

from jobcast.extensions import db
from jobcast.jobs import states
from jobcast.jobs.models import Job
from jobcast.runtime import current_runtime

TERMINAL_EVENTS = frozenset(states.EVENT_FOR_STATE[s] for s in states.TERMINAL)


def last_event_id(header: str | None) -> int:
    """The seq a reconnecting client last saw; 0 (everything) when absent or malformed."""
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0


def sse_response(job_id: str, after_seq: int) -> Response:
    rt = current_runtime()
    block_ms = int(rt.settings.sse_keepalive_seconds * 1000)

    def stream() -> Iterator[str]:
        yield "retry: 2000\n\n"
        last = after_seq
        while True:
            batch = rt.events.history(job_id, last, block_ms=block_ms)
            for name, payload in batch:
                last = payload["seq"]
                data = json.dumps(payload, separators=(",", ":"))
                yield f"id: {last}\nevent: {name}\ndata: {data}\n\n"
                if name in TERMINAL_EVENTS:
                    return
            if not batch:
                # Quiet for a whole keep-alive period: end if the job is over (its log may
                # have expired), otherwise keep the connection open through proxies.
                db.session.expire_all()
                job = db.session.get(Job, job_id)
                if job is None or job.status in states.TERMINAL:
                    return
                yield ": keep-alive\n\n"

    return Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
