"""Everything that changes a job: the only module that commits job rows.

Each change is one short transaction, committed before its event is published, so a client that
reacts to an event and reads the job over HTTP sees at least that state. Views and tasks call
these functions; they never touch the session themselves.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import datetime
from typing import Any

from kombu.exceptions import OperationalError as BrokerError
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import OperationalError as DatabaseError

from jobcast.dbtypes import utcnow
from jobcast.errors import NotFound, ServiceUnavailable, ValidationFailed, pydantic_errors
from jobcast.extensions import db
from jobcast.jobs import states
from jobcast.jobs.models import Job
from jobcast.runtime import current_runtime

log = logging.getLogger(__name__)

MAX_PAGE = 100


def submit(owner_id: int, type_name: Any, raw_params: Any, request_id: str | None) -> Job:
    """Validate, record and dispatch a job; ``job.queued`` is published before dispatch."""
    rt = current_runtime()
    job_type = rt.registry.get(type_name) if isinstance(type_name, str) else None
    if job_type is None:
        known = ", ".join(rt.registry.names())
        raise ValidationFailed(
            f"unknown job type {type_name!r}; known types: {known}",
            errors=[{"field": "type", "message": f"must be one of: {known}", "type": "enum"}],
        )
    try:
        params = job_type.validate(raw_params).model_dump(mode="json")
    except ValidationError as exc:
        raise ValidationFailed(
            f"invalid params for {job_type.name}",
            errors=[
                {**e, "field": f"params.{e['field']}" if e["field"] else "params"}
                for e in pydantic_errors(exc)
            ],
        ) from None

    job = Job(
        id=str(uuid.uuid4()),
        owner_id=owner_id,
        type=job_type.name,
        params=params,
        status=states.QUEUED,
        request_id=request_id,
    )
    job.celery_task_id = job.id
    try:
        db.session.add(job)
        db.session.commit()
    except DatabaseError:
        db.session.rollback()
        log.exception("database unavailable while submitting a job")
        raise ServiceUnavailable("the database is unavailable; try again shortly") from None
    try:
        _announce(job, "job.queued")
        rt.celery.tasks["jobcast.run"].apply_async(
            args=[job.id],
            task_id=job.id,
            queue=job_type.queue,
            soft_time_limit=job_type.time_limit,
            time_limit=job_type.time_limit + 30,
            headers={"request_id": request_id},
        )
    except (BrokerError, RedisError, OSError):
        log.exception("broker unavailable while submitting job %s", job.id)
        _forget(job)
        raise ServiceUnavailable("the job queue is unavailable; try again shortly") from None
    return job


def _forget(job: Job) -> None:
    """Undo a submission whose dispatch failed, so no accepted-looking job is left behind."""
    db.session.delete(job)
    db.session.commit()
    try:
        current_runtime().events.forget(job.id)
    except RedisError:
        log.warning("could not remove the event log of undone job %s", job.id)


def get_owned(owner_id: int, job_id: str) -> Job:
    """The caller's job, or NotFound: never reveal that someone else's job exists."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no job {job_id!r}") from None
    job = db.session.get(Job, job_id)
    if job is None or job.owner_id != owner_id:
        raise NotFound(f"no job {job_id!r}")
    return job


def list_owned(
    owner_id: int, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """A page of the caller's jobs, newest first, ties broken by id (descending)."""
    query = select(Job).where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor is not None:
        created_at, job_id = decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    rows = list(
        db.session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        uuid.UUID(job_id)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "invalid cursor",
            errors=[
                {
                    "field": "cursor",
                    "message": "not a cursor this API returned",
                    "type": "value_error",
                }
            ],
        ) from None
    return created_at, job_id


def to_dict(job: Job) -> dict[str, Any]:
    """The job object of the API contract (and of ``job.succeeded``'s ``result``)."""
    return {
        "id": job.id,
        "type": job.type,
        "status": job.status,
        "progress": round(job.progress, 2),
        "message": job.message,
        "params": job.params,
        "result": public_result(job),
        "error": job.error,
        "attempts": job.attempts,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def public_result(job: Job) -> dict[str, Any] | None:
    if job.result is None:
        return None
    result = dict(job.result)
    if job.result_key and job.status == states.SUCCEEDED:
        result["download_url"] = current_runtime().signer.url(job.id, job.owner_id)
    return result


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# --- transitions made by the worker -------------------------------------------------------


def _transition(job: Job, new_status: str) -> None:
    states.check_transition(job.status, new_status)
    job.status = new_status


def _announce(job: Job, event: str, **extra: Any) -> dict[str, Any]:
    return current_runtime().events.publish(
        event,
        job_id=job.id,
        owner_id=job.owner_id,
        status=job.status,
        progress=job.progress,
        message=job.message,
        **extra,
    )


def start_attempt(job_id: str) -> Job | None:
    """Mark the job running for one more attempt; None if it must not run (gone or finished)."""
    job = db.session.get(Job, job_id, with_for_update=True)
    if job is None or job.status in states.TERMINAL:
        db.session.rollback()
        return None
    _transition(job, states.RUNNING)
    job.attempts += 1
    job.started_at = job.started_at or utcnow()
    job.error = None
    db.session.commit()
    _announce(job, "job.started", attempt=job.attempts)
    return job


def record_progress(job: Job, percent: float, message: str | None, *, persist: bool) -> None:
    """Publish progress; write it to the row only when ``persist`` (the caller throttles)."""
    job.progress = percent
    if message is not None:
        job.message = message
    if persist:
        db.session.commit()
    _announce(job, "job.progress")


def succeed(job: Job, result: dict[str, Any], result_key: str | None) -> None:
    _transition(job, states.SUCCEEDED)
    job.progress = 100.0
    job.result = result
    job.result_key = result_key
    job.finished_at = utcnow()
    db.session.commit()
    _announce(job, "job.succeeded", result=public_result(job))


def fail(job: Job, error: dict[str, str]) -> None:
    _transition(job, states.FAILED)
    job.error = error
    job.message = error["message"]
    job.finished_at = utcnow()
    db.session.commit()
    _announce(job, "job.failed", error=error)


def schedule_retry(job: Job, error: dict[str, str], retry_at: datetime) -> None:
    _transition(job, states.RETRYING)
    job.error = error
    db.session.commit()
    _announce(job, "job.retrying", error=error, attempt=job.attempts, retry_at=_iso(retry_at))


def mark_cancelled(job: Job) -> None:
    _transition(job, states.CANCELLED)
    job.finished_at = utcnow()
    job.message = "cancelled"
    db.session.commit()
    _announce(job, "job.cancelled")


# --- cancellation and retention ------------------------------------------------------------


def _cancel_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:cancel"


def cancel_requested(job_id: str) -> bool:
    """Checked by a running job at its progress checkpoints."""
    return bool(current_runtime().redis.exists(_cancel_key(job_id)))


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
