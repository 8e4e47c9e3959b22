"""Submitting, reading and cancelling jobs: what the API asks of the job log.

Rows are written by ``store`` and changes announced by ``notify``. A submission is committed
first and dispatched after the commit, so a worker never receives a job it cannot read; a
dispatch that fails undoes the submission (503) and leaves nothing behind, and one that never
finished (the process died in between) is found and sent again by ``recovery.redispatch_stuck``.

Where the broker is the event log's own Redis (``Runtime.atomic_dispatch``), the job's
message is pushed by the same Lua script that numbers its ``job.queued`` event: the event and
the message exist together or not at all, so the numbered event is the record that the job was
sent, and no second commit marks the row (the sweeper writes the mark when it looks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from datetime import timedelta
from typing import Any

from kombu.exceptions import OperationalError as BrokerError
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import OperationalError as DatabaseError

from jobcast.db import rows
from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.db.types import utcnow
from jobcast.errors import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    ValidationFailed,
    pydantic_errors,
)
from jobcast.jobs import notify, states, store, tooling
from jobcast.jobs.cursor import decode_cursor, encode_cursor
from jobcast.jobs.hold import held_publishes
from jobcast.jobs.registry import JobType
from jobcast.runtime import current_runtime
from jobcast.telemetry import metrics, tracing

log = logging.getLogger(__name__)

MAX_PAGE = 100
IDEMPOTENCY_WINDOW = timedelta(hours=24)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def submit(
    owner_id: str,
    type_name: Any,
    raw_params: Any,
    request_id: str | None,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Validate, record and dispatch a job; returns (job, replayed).

    With an ``Idempotency-Key`` the same user, key and body within 24 hours get the original
    job back (replayed=True) instead of a new one, even when the duplicates race.
    """
    job_type, params = _validate(type_name, raw_params, owner_id)
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise ValidationFailed(
            "invalid Idempotency-Key",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "type": "value_error",
                    "message": "1 to 255 visible ASCII characters",
                }
            ],
        )
    request_hash = None
    if idempotency_key is not None:
        request_hash = _request_hash(job_type, params)
        original = _replay(owner_id, idempotency_key, request_hash)
        if original is not None:
            return original, True
    values = _new_row(owner_id, job_type.name, params, request_id, idempotency_key, request_hash)
    with tracing.submit_span(job_type.name) as span:
        span.set_attribute("job.id", values["id"])
        values["traceparent"] = tracing.traceparent(span)
        return _record(values, job_type, owner_id, idempotency_key, request_hash)


def _record(
    values: dict[str, Any],
    job_type: JobType,
    owner_id: str,
    idempotency_key: str | None,
    request_hash: str | None,
) -> tuple[Job, bool]:
    """Insert the new job's row under the owner's cap and queue it (the submit's span)."""
    cap = current_runtime().settings.max_active_jobs
    try:
        row = store.insert_under_cap(values, cap)
    except IntegrityError:
        db.session.rollback()  # a replay read before must not keep its snapshot (SQLite)
        # A concurrent duplicate with the same key committed first: answer with its job.
        original = _replay(owner_id, idempotency_key or "", request_hash or "")
        if original is not None:
            return original, True
        raise
    except DatabaseError:
        db.session.rollback()
        log.exception("database unavailable while submitting a job")
        raise ServiceUnavailable("the database is unavailable; try again shortly") from None
    if row is None:
        raise TooManyRequests(
            f"you have {cap} unfinished jobs; the limit is {cap}: wait for some to finish",
            retry_after=10,
        )
    job = rows.adopt(db.session, Job, row)
    try:
        _queue(job, job_type)
    except (BrokerError, RedisError, OSError):
        log.exception("broker unavailable while submitting job %s", job.id)
        _undo(job)
        raise ServiceUnavailable("the job queue is unavailable; try again shortly") from None
    except Exception:
        _undo(job)
        raise
    if current_runtime().settings.metrics:
        metrics.of_type(job.type).submitted.inc()
    return job, False


def _new_row(
    owner_id: str,
    type_name: str,
    params: dict[str, Any],
    request_id: str | None,
    idempotency_key: str | None,
    request_hash: str | None,
) -> dict[str, Any]:
    """A new job's row for ``store.insert_under_cap``, with what the model would default given
    explicitly (a driver statement runs no Core defaults); the submit's span sets its
    ``traceparent``."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    return {
        "id": job_id,
        "owner_id": owner_id,
        "type": type_name,
        "params": params,
        "celery_task_id": job_id,
        "request_id": request_id,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "status": states.QUEUED,
        "progress": 0.0,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "traceparent": None,
    }


def _request_hash(job_type: JobType, params: dict[str, Any]) -> str:
    """What an Idempotency-Key's replay must match: the type and the validated params."""
    return hashlib.sha256(json.dumps([job_type.name, params], sort_keys=True).encode()).hexdigest()


def _validate(type_name: Any, raw_params: Any, owner_id: str) -> tuple[JobType, dict[str, Any]]:
    """The job type and its params as stored, or the 422 that says why not; the type's
    submit-time check runs here, before anything is written."""
    rt = current_runtime()
    job_type = rt.registry.get(type_name) if isinstance(type_name, str) else None
    if job_type is None:
        known = ", ".join(rt.registry.names())
        raise ValidationFailed(
            f"unknown job type {type_name!r}; known types: {known}",
            errors=[{"field": "type", "message": f"must be one of: {known}", "type": "enum"}],
        )
    try:
        params = job_type.validate(raw_params)
    except ValidationError as exc:
        raise ValidationFailed(
            f"invalid params for {job_type.name}",
            errors=[
                {**e, "field": f"params.{e['field']}" if e["field"] else "params"}
                for e in pydantic_errors(exc)
            ],
        ) from None
    job_type.check_submit(params, owner_id)
    return job_type, params.model_dump(mode="json")


def _replay(owner_id: str, key: str, request_hash: str) -> Job | None:
    """The job an earlier request with this key created, if it is still within the window."""
    job = db.session.scalar(select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key))
    if job is None:
        return None
    if job.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        store.free_idempotency_key(job)  # expired: the key is free for a new job
        return None
    if job.request_hash != request_hash:
        raise ValidationFailed(
            "this Idempotency-Key was used with a different request body",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "type": "idempotency_mismatch",
                    "message": "reused with a different body",
                }
            ],
        )
    return job


def _queue(job: Job, job_type: JobType) -> None:
    """Announce ``job.queued`` and send the job: one atomic script where the broker allows it
    (kombu builds the message, the event's script pushes it), else event, message and mark."""
    if not current_runtime().atomic_dispatch:
        notify.announce(job, "job.queued")
        dispatch(job, job_type)
        return
    with held_publishes() as held:
        send_message(job, job_type)
    if len(held.pushes) != 1:
        raise RuntimeError(f"expected one broker message for job {job.id}, got {len(held.pushes)}")
    notify.announce(job, "job.queued", enqueue=held.pushes[0], enqueue_events=held.publishes)


def dispatch(job: Job, job_type: JobType) -> None:
    """Send the job to its queue and record that it was sent."""
    send_message(job, job_type)
    store.mark_dispatched(job, utcnow())


def send_message(job: Job, job_type: JobType) -> None:
    """Publish the job's Celery message (task id = job id). Its headers carry the request id
    and the submit's traceparent: the attempt's span starts from it before the row is read."""
    headers = {"request_id": job.request_id}
    if job.traceparent:
        headers[tracing.TRACEPARENT_HEADER] = job.traceparent
    current_runtime().celery.tasks["jobcast.run"].apply_async(
        args=[job.id],
        task_id=job.id,
        queue=current_runtime().queues[job_type.bound],
        soft_time_limit=job_type.time_limit,
        time_limit=job_type.time_limit + 30,
        headers=headers,
        **tooling.task_names(job),
    )


def _undo(job: Job) -> None:
    """Remove a submission whose dispatch failed, so no accepted-looking job is left behind."""
    store.remove(job)
    try:
        current_runtime().events.forget(job.id)
    except RedisError:
        log.warning("could not remove the event log of undone job %s", job.id)


def cancel(owner_id: str, job_id: str) -> Job:
    """Cancel the caller's job: a queued one never starts, a running one stops at its next
    checkpoint; a finished one is a 409."""
    job = get_owned(owner_id, job_id)
    if job.status in states.TERMINAL:
        raise Conflict(f"the job is already {job.status}")
    notify.request_cancel(job.id)
    if store.cancel_unstarted(job):
        notify.announce(job, "job.cancelled")
        if current_runtime().settings.metrics:
            metrics.of_type(job.type).cancelled.inc()
    return job


def get_owned(owner_id: str, job_id: str) -> Job:
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
    owner_id: str, *, status: str | None, limit: int, cursor: str | None
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


def to_dict(job: Job) -> dict[str, Any]:
    """The job object of the API contract."""
    return {
        "id": job.id,
        "type": job.type,
        "status": job.status,
        "progress": round(job.progress, 2),
        "message": job.message,
        "params": job.params,
        "result": notify.public_result(job),
        "error": job.error,
        "attempts": job.attempts,
        "created_at": notify.iso(job.created_at),
        "started_at": notify.iso(job.started_at),
        "finished_at": notify.iso(job.finished_at),
        "trace_id": tracing.trace_id(job.traceparent),
    }
