"""A job's life after submission: the worker-side transitions and the periodic sweeps.

With ``service`` this is the only code that commits job rows. Each change is one short
transaction committed before its event is published, so a client that reacts to an event and
reads the job over HTTP sees at least that state.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import bindparam, event, func, literal, select, update
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
_SUCCEED_ALONE = DriverStatement(_SUCCEED)
_USED_DATABASE = "jobcast.used_database"


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


def _transition(job: Job, new_status: str) -> None:
    states.check_transition(job.status, new_status)
    job.status = new_status


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
        rows.write(
            db.session, job, _PROGRESS, progress=percent, message=job.message, updated_at=utcnow()
        )
        db.session.commit()
    try:
        announce(job, "job.progress", unless_cancelled=True)
    except events.Cancelled:
        raise JobCancelled(job.id) from None


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
        _SUCCEED_ALONE.run(db.engine, rows.row_params(job, values))
        rows.written(job, values)
    announce(job, "job.succeeded", result=public_result(job))


def fail(job: Job, error: dict[str, str]) -> None:
    _transition(job, states.FAILED)
    job.error = error
    job.message = error["message"]
    job.finished_at = utcnow()
    db.session.commit()
    announce(job, "job.failed", error=error)


def schedule_retry(job: Job, error: dict[str, str], retry_at: datetime) -> None:
    _transition(job, states.RETRYING)
    job.error = error
    db.session.commit()
    announce(job, "job.retrying", error=error, attempt=job.attempts, retry_at=iso(retry_at))


def mark_cancelled(job: Job) -> None:
    _transition(job, states.CANCELLED)
    job.finished_at = utcnow()
    job.message = "cancelled"
    db.session.commit()
    announce(job, "job.cancelled")


# --- cancellation flag -----------------------------------------------------------------------


def request_cancel(job_id: str) -> None:
    """Flag a running job; it stops at its next checkpoint. Kept as long as the event log."""
    rt = current_runtime()
    rt.redis.set(events.cancel_key(job_id), "1", ex=int(rt.settings.event_retention_hours * 3600))


def cancel_requested(job_id: str) -> bool:
    """Checked by a running job at its progress checkpoints."""
    return bool(current_runtime().redis.exists(events.cancel_key(job_id)))


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


def undispatched_before(cutoff: datetime, limit: int = 500) -> list[Job]:
    """Queued jobs committed before ``cutoff`` whose dispatch never completed."""
    return list(
        db.session.scalars(
            select(Job)
            .where(
                Job.status == states.QUEUED, Job.dispatched_at.is_(None), Job.created_at < cutoff
            )
            .order_by(Job.created_at)
            .limit(limit)
        )
    )


def fail_lost(cutoff: datetime) -> int:
    """Fail running jobs nobody runs any more: no live lease, and no change since ``cutoff``.

    A worker killed by a hard time limit (prefork kills the process) leaves its job running;
    the broker does not deliver it again because Celery acknowledged it as failed.
    """
    rt = current_runtime()
    lost = 0
    for job in db.session.scalars(
        select(Job).where(Job.status == states.RUNNING, Job.updated_at < cutoff).limit(500)
    ):
        if rt.leases.held(job.id):
            continue
        fail(job, {"type": "lost", "message": "the worker running this job stopped"})
        lost += 1
    return lost


def stale_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)
