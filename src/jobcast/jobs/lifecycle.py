"""A job's life after submission: the worker-side transitions and the periodic sweeps.

With ``service`` this is the only code that commits job rows. Each change is one short
transaction committed before its event is published, so a client that reacts to an event and
reads the job over HTTP sees at least that state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import bindparam, event, func, literal, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from jobcast import rows
from jobcast.dbtypes import utcnow
from jobcast.errors import JobCancelled
from jobcast.extensions import db
from jobcast.jobs import events, states
from jobcast.jobs.driver import DriverStatement
from jobcast.jobs.lease import Lease
from jobcast.jobs.models import Job
from jobcast.runtime import current_runtime

log = logging.getLogger(__name__)

_jobs = Job.__table__
_now = bindparam("now", type_=_jobs.c.updated_at.type)
# The two statements every job runs go straight to the driver (jobs.driver): through the Session
# and Core they were a fifth of a no-op job's worker CPU. The states are literals, not an
# expanding IN, whose SQL Core renders anew on every call.
_START = DriverStatement(
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("job_id"),
        _jobs.c.status.in_([literal(s) for s in sorted(states.sources_of(states.RUNNING))]),
    )
    .values(
        status=states.RUNNING,
        attempts=_jobs.c.attempts + 1,
        error=None,
        started_at=func.coalesce(_jobs.c.started_at, _now),
        updated_at=_now,
    )
    .returning(*_jobs.c)
)
_PROGRESS = rows.row_update(_jobs, "progress", "message", "updated_at")
_SUCCEED = rows.row_update(
    _jobs, "status", "progress", "message", "result", "result_key", "finished_at", "updated_at"
)
_USED_DATABASE = "jobcast.used_database"
_WRITES: dict[tuple[str, ...], DriverStatement] = {}


@event.listens_for(Session, "after_begin")
def _note_database_use(session: Session, *_: Any) -> None:
    """Mark a session that opened a database transaction (``succeed`` asks whether the job
    function did any work in it)."""
    session.info[_USED_DATABASE] = True


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
    """Publish ``event`` with the job's committed state."""
    return current_runtime().events.publish(
        event,
        job_id=job.id,
        owner_id=job.owner_id,
        status=job.status,
        progress=job.progress,
        message=job.message,
        **extra,
    )


#: Redis is away (not a script or a command that is wrong): worth waiting out.
_REDIS_AWAY = (RedisConnectionError, RedisTimeoutError)


def announce_outcome(job: Job, event: str, **extra: Any) -> None:
    """Publish an outcome already committed to the row, waiting out a Redis outage for up to
    ``JOBCAST_DB_RETRY_SECONDS``: without its terminal event no client learns the job ended.
    Past that it is logged, not raised (the row is the truth, and a raise here would record the
    committed outcome again as a failure)."""
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
        row = _START.run(db.engine, {"job_id": job_id, "now": utcnow()})
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
    announce(job, "job.started", attempt=job.attempts)
    return job, lease


def record_progress(job: Job, percent: float, message: str | None, *, persist: bool) -> None:
    """Publish progress; write it to the row only when ``persist`` (the caller throttles).

    Raises JobCancelled, publishing nothing, once the owner has asked to cancel.
    """
    job.progress = percent
    if message is not None:
        job.message = message
    if persist:
        session = db.session()
        used = session.info.get(_USED_DATABASE, False)
        try:
            rows.write(
                db.session,
                job,
                _PROGRESS,
                progress=percent,
                message=job.message,
                updated_at=utcnow(),
            )
            db.session.commit()
            # Its own committed write is not work of the job function's: the outcome may still
            # be written alone (and retried through a database outage, see ``save``).
            session.info[_USED_DATABASE] = used
        except DBAPIError as exc:
            if not connection_error(exc):
                raise
            # The row's progress is a convenience (the events carry it): a database blip must
            # not stop the job. The next write, or the outcome, tries again.
            log.warning("job %s: progress not saved, database unavailable (%s)", job.id, exc.orig)
            settle(job)
    try:
        announce(job, "job.progress", unless_cancelled=True)
    except events.Cancelled:
        raise JobCancelled(job.id) from None
    except _REDIS_AWAY as exc:
        # A progress event is a convenience too: the job goes on, and the next one (or the
        # outcome, which waits for Redis) tells the clients where it is.
        log.warning("job %s: progress event not sent, Redis unavailable (%s)", job.id, exc)


def succeed(job: Job, result: dict[str, Any], result_key: str | None) -> None:
    """Mark the job succeeded: in the session's transaction if the job function used the session
    (whatever it left there commits with the row, as before), else in one of its own."""
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
    session = db.session()
    if session.info.get(_USED_DATABASE) or session.new or session.dirty or session.deleted:
        rows.write(session, job, _SUCCEED, **values)
        session.commit()
    else:
        save(job, **values)
    announce_outcome(job, "job.succeeded", result=public_result(job))


def fail(job: Job, error: dict[str, str]) -> None:
    states.check_transition(job.status, states.FAILED)
    now = utcnow()
    save(
        job,
        status=states.FAILED,
        error=error,
        message=error["message"],
        finished_at=now,
        updated_at=now,
    )
    announce_outcome(job, "job.failed", error=error)


def schedule_retry(job: Job, error: dict[str, str], retry_at: datetime) -> None:
    states.check_transition(job.status, states.RETRYING)
    save(job, status=states.RETRYING, error=error, updated_at=utcnow())
    announce_outcome(job, "job.retrying", error=error, attempt=job.attempts, retry_at=iso(retry_at))


def mark_cancelled(job: Job) -> None:
    states.check_transition(job.status, states.CANCELLED)
    now = utcnow()
    save(job, status=states.CANCELLED, finished_at=now, message="cancelled", updated_at=now)
    announce_outcome(job, "job.cancelled")


def settle(job: Job) -> None:
    """Roll the session back (a failed attempt's work, or a transaction the database dropped)
    and keep the job's values as they were: reloading them could fail while the database is
    away, and the progress the events showed must not move backwards."""
    values = {c.key: job.__dict__[c.key] for c in _jobs.columns if c.key in job.__dict__}
    with contextlib.suppress(DBAPIError):
        db.session.rollback()
    rows.written(job, values)


def save(job: Job, **values: Any) -> None:
    """Write ``values`` to the job's row in a transaction of its own, retrying through a
    database outage for up to ``JOBCAST_DB_RETRY_SECONDS``; the job object takes them only
    once they are written, so a job whose outcome could not be recorded still looks running
    (its lease is freed, and the recovery sweep re-runs or fails it)."""
    statement = _WRITES.get(tuple(values))
    if statement is None:
        statement = _WRITES[tuple(values)] = DriverStatement(rows.row_update(_jobs, *values))
    params = rows.row_params(job, values)
    deadline = time.monotonic() + current_runtime().settings.db_retry_seconds
    delay = 0.5
    while True:
        try:
            statement.run(db.engine, params)
            break
        except DBAPIError as exc:
            if not connection_error(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("job %s: database unavailable (%s); retrying", job.id, exc.orig)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    rows.written(job, values)


def connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away (worth a retry), not that a statement is wrong."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


# --- cancellation flag -----------------------------------------------------------------------


def request_cancel(job_id: str) -> None:
    """Flag a running job; it stops at its next checkpoint. Kept as long as the event log."""
    rt = current_runtime()
    rt.redis.set(events.cancel_key(job_id), "1", ex=int(rt.settings.event_retention_hours * 3600))


def cancel_requested(job_id: str) -> bool:
    """Checked by a running job at its progress checkpoints; while Redis is away it cannot be
    known, and the job goes on (the next checkpoint asks again)."""
    try:
        return bool(current_runtime().redis.exists(events.cancel_key(job_id)))
    except _REDIS_AWAY:
        return False


# --- periodic sweeps (Celery beat) -----------------------------------------------------------


def expire_results(cutoff: datetime) -> int:
    """Delete result files of jobs that finished before ``cutoff``; the rows stay."""
    rt = current_runtime()
    jobs = db.session.scalars(
        select(Job).where(Job.result_key.is_not(None), Job.finished_at < cutoff)
    ).all()
    for job in jobs:
        rt.storage.delete(job.result_key)  # type: ignore[arg-type]
        job.result_key = None
        job.result = {**(job.result or {}), "expired": True}
        db.session.commit()
    return len(jobs)


def stale_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)
