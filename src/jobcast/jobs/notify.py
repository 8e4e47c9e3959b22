"""What a job's changes tell the world: its events, the result as its owner sees it, and the
cancel flag a running job looks for. Nothing here writes the job's row: ``store`` commits a
change first, then it is announced here.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobcast.db.tables import Job
from jobcast.errors import JobCancelled
from jobcast.jobs import events, states
from jobcast.runtime import current_runtime
from jobcast.telemetry import tracing

log = logging.getLogger(__name__)

#: Redis is away (not a script or a command that is wrong): worth waiting out.
_REDIS_AWAY = (RedisConnectionError, RedisTimeoutError)
_UNTRACED = nullcontext()


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def public_result(job: Job) -> dict[str, Any] | None:
    """The result as its owner sees it: with a fresh signed download link for a file."""
    if job.result is None:
        return None
    result = dict(job.result)
    if job.result_key and job.status == states.SUCCEEDED:
        result["download_url"] = current_runtime().signer.url(job.id, job.owner_id)
    return result


def announce(job: Job, event: str, **extra: Any) -> dict[str, Any]:
    """Publish ``event`` with the job's committed state and trace id: a span
    ``jobcast.publish <event>`` where the span in force records (not otherwise: the job's
    progress events are the hot path)."""
    scope: AbstractContextManager[object] = _UNTRACED
    if tracing.recording():
        scope = tracing.tracer.start_as_current_span(
            f"jobcast.publish {event}", attributes={"job.id": job.id, "job.event": event}
        )
    with scope:
        return current_runtime().events.publish(
            event,
            job_id=job.id,
            owner_id=job.owner_id,
            status=job.status,
            progress=job.progress,
            message=job.message,
            trace_id=tracing.trace_id(job.traceparent),
            **extra,
        )


def announce_progress(job: Job) -> None:
    """Publish the job's progress; raises JobCancelled, publishing nothing, once the owner has
    asked to cancel."""
    try:
        announce(job, "job.progress", unless_cancelled=True)
    except events.Cancelled:
        raise JobCancelled(job.id) from None
    except _REDIS_AWAY as exc:
        # A progress event is a convenience, like the row's progress: the job goes on, and the
        # next one (or the outcome, which waits for Redis) tells the clients where it is.
        log.warning("job %s: progress event not sent, Redis unavailable (%s)", job.id, exc)


def announce_outcome(job: Job, event: str, **extra: Any) -> None:
    """Publish an outcome already committed to the row, waiting out a Redis outage for up to
    ``JOBCAST_DB_RETRY_SECONDS``: without its terminal event no client learns the job ended.
    Past that it is logged, not raised (the row is the truth, and a raise here would record the
    committed outcome again as a failure)."""
    _announce_surely(job, event, **extra)


def announce_output(job: Job, index: int, text: str, restart: bool) -> None:
    """Publish a piece of the job's text output. Unlike progress, a piece cannot be skipped
    (the pieces together are the output), so a Redis outage is waited out as for outcomes."""
    extra: dict[str, Any] = {"index": index, "text": text}
    if restart:
        extra["restart"] = True
    _announce_surely(job, "job.output", **extra)


def _announce_surely(job: Job, event: str, **extra: Any) -> None:
    deadline = time.monotonic() + current_runtime().settings.db_retry_seconds
    delay = 0.5
    while True:
        try:
            announce(job, event, **extra)
            return
        except _REDIS_AWAY as exc:
            if time.monotonic() + delay > deadline:
                log.error(
                    "job %s is %s but its %s was not sent: %s", job.id, job.status, event, exc
                )
                return
            log.warning("job %s: Redis unavailable (%s); retrying its %s", job.id, exc, event)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


# --- cancellation flag -----------------------------------------------------------------------


def request_cancel(job_id: str) -> None:
    """Flag a running job; it stops at its next checkpoint. Kept as long as the event log."""
    current_runtime().events.request_cancel(job_id)


def cancel_requested(job_id: str) -> bool:
    """Checked by a running job at its progress checkpoints; while Redis is away it cannot be
    known, and the job goes on (the next checkpoint asks again)."""
    try:
        return current_runtime().events.cancel_requested(job_id)
    except _REDIS_AWAY:
        return False
