"""A job's life after submission, the worker's side: an attempt starts, reports progress and
ends (succeeded, failed, retrying, cancelled), and its result file later expires.

Each step writes through ``store`` (a short transaction of its own, committed first) and then
tells the world through ``notify``, and counts itself in the app's metrics (``counted``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from jobcast.db import rows
from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.db.types import utcnow
from jobcast.jobs import notify, states, store
from jobcast.jobs.lease import Lease
from jobcast.runtime import current_runtime
from jobcast.telemetry import metrics

log = logging.getLogger(__name__)

#: When this task's attempt started (perf_counter), for its run time at the outcome; a
#: context variable, so each greenlet of a gevent worker has its own.
_attempt_began: ContextVar[float | None] = ContextVar("jobcast_attempt_began", default=None)


class Duplicate(Exception):
    """Another attempt of this job holds its lease; this delivery must wait and look again."""


def start_attempt(job_id: str) -> tuple[Job, Lease] | None:
    """Take the job's lease and mark it running for one more attempt.

    None when the job must not run (gone, finished, cancelled); Duplicate when another attempt
    is alive. The status change is conditional, so a cancel that commits first wins, and it
    returns the row it changed: one statement, where reading, updating and reading again took
    three.
    """
    rt = current_runtime()
    lease = rt.leases.acquire(job_id)
    if lease is None:
        raise Duplicate(job_id)
    try:
        row = store.start(job_id)
    except BaseException:
        # The attempt never began: free the lease, or the heartbeat would keep it alive (and
        # every later delivery waiting) for as long as this process runs.
        lease.let_lapse()
        with contextlib.suppress(RedisError):
            lease.release()
        raise
    if row is None:
        lease.release()
        return None
    job = rows.adopt(db.session, Job, row)
    notify.announce(job, "job.started", attempt=job.attempts)
    if rt.settings.metrics:
        _count_start(job)
    return job, lease


def _count_start(job: Job) -> None:
    """Count the attempt; the first one also ends the job's wait in the queue (a retry's wait
    is its own backoff, not the queue's)."""
    _attempt_began.set(time.perf_counter())
    counted = metrics.of_type(job.type)
    counted.started.inc()
    queued = job.dispatched_at or job.created_at
    if job.attempts == 1 and job.started_at is not None and queued is not None:
        counted.queue_wait.observe(max(0.0, (job.started_at - queued).total_seconds()))


def counted(job: Job) -> metrics.TypeMetrics | None:
    """The job type's metrics when the app counts, after observing the attempt's run time
    (an outcome ends it)."""
    if not current_runtime().settings.metrics:
        return None
    found = metrics.of_type(job.type)
    began = _attempt_began.get()
    if began is not None:
        _attempt_began.set(None)
        found.run_time.observe(time.perf_counter() - began)
    return found


def record_progress(job: Job, percent: float, message: str | None, *, persist: bool) -> None:
    """Publish progress; write it to the row only when ``persist`` (the caller throttles).

    Raises JobCancelled, publishing nothing, once the owner has asked to cancel.
    """
    job.progress = percent
    if message is not None:
        job.message = message
    if persist:
        try:
            store.write_progress(job, percent, job.message)
        except DBAPIError as exc:
            if not store.connection_error(exc):
                raise
            # The row's progress is a convenience (the events carry it): a database blip must
            # not stop the job. The next write, or the outcome, tries again.
            log.warning("job %s: progress not saved, database unavailable (%s)", job.id, exc.orig)
            store.settle(job)
    notify.announce_progress(job)


def succeed(job: Job, result: dict[str, Any], result_key: str | None) -> None:
    """Mark the job succeeded. The job function's own database work is its own to commit:
    jobcast's session never commits the host's."""
    states.check_transition(job.status, states.SUCCEEDED)
    now = utcnow()
    values = {
        "status": states.SUCCEEDED,
        "progress": 100.0,
        "message": job.message,
        "result": result,
        "result_key": result_key,
        "finished_at": now,
        "updated_at": now,
    }
    store.save(job, **values)
    notify.announce_outcome(job, "job.succeeded", result=notify.public_result(job))
    if found := counted(job):
        found.succeeded.inc()


def fail(job: Job, error: dict[str, str]) -> None:
    states.check_transition(job.status, states.FAILED)
    now = utcnow()
    store.save(
        job,
        status=states.FAILED,
        error=error,
        message=error["message"],
        finished_at=now,
        updated_at=now,
    )
    notify.announce_outcome(job, "job.failed", error=error)
    if found := counted(job):
        found.failed.inc()


def schedule_retry(job: Job, error: dict[str, str], retry_at: datetime) -> None:
    states.check_transition(job.status, states.RETRYING)
    store.save(job, status=states.RETRYING, error=error, updated_at=utcnow())
    notify.announce_outcome(
        job, "job.retrying", error=error, attempt=job.attempts, retry_at=notify.iso(retry_at)
    )
    if found := counted(job):
        found.retried.inc()


def mark_cancelled(job: Job, result: dict[str, Any] | None = None) -> None:
    """Mark the job cancelled, keeping ``result`` when the job kept what it made so far."""
    states.check_transition(job.status, states.CANCELLED)
    now = utcnow()
    values: dict[str, Any] = {"result": result} if result is not None else {}
    store.save(
        job,
        status=states.CANCELLED,
        finished_at=now,
        message="cancelled",
        updated_at=now,
        **values,
    )
    notify.announce_outcome(job, "job.cancelled", **({"result": result} if result else {}))
    if found := counted(job):
        found.cancelled.inc()


def expire_results(cutoff: datetime) -> int:
    """Delete result files of jobs that finished before ``cutoff``; the rows stay (Celery beat)."""
    rt = current_runtime()
    jobs = db.session.scalars(
        select(Job).where(Job.result_key.is_not(None), Job.finished_at < cutoff)
    ).all()
    for job in jobs:
        rt.storage.delete(job.result_key)  # type: ignore[arg-type]
        store.expire_result(job)
    return len(jobs)
