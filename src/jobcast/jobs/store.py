"""The one module that writes job rows: every INSERT, UPDATE and DELETE of the jobs table, and
every commit of jobcast's session.

Each change is one short transaction of its own, committed before its event is published (by
the caller, through ``notify``), so a client that reacts to an event and reads the job over HTTP
sees at least that state. Keeping the writes here keeps that rule in one place to read, and
``tests/unit/test_job_writes.py`` keeps them here. Each write is a span (``jobcast.db.<what>``)
under the job's or the submit's span, where that one records.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Update, bindparam, func, insert, literal, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from jobcast.db import rows
from jobcast.db.database import db
from jobcast.db.driver import DriverStatement
from jobcast.db.tables import JOBS, Job
from jobcast.db.types import utcnow
from jobcast.jobs import states
from jobcast.runtime import current_runtime
from jobcast.telemetry import tracing

log = logging.getLogger(__name__)

_jobs = JOBS
_now = bindparam("now", type_=_jobs.c.updated_at.type)

# Every submit runs this, on the driver (see ``jobcast.db.driver``): the insert happens only
# while the owner has fewer than ``cap`` unfinished jobs, checked in the same statement (a soft
# cap where writers run concurrently, as on PostgreSQL: racing submissions may pass it by a
# few). The count stops at the cap, so a user with a long backlog costs no more than one at
# the cap, and reads only the index (owner_id, status): the selected column is in it. The
# states are bound one by one: an IN over a list is expanded, and its SQL rendered again, on
# every execution.
_SUBMITTED = (
    "id",
    "owner_id",
    "type",
    "params",
    "celery_task_id",
    "request_id",
    "idempotency_key",
    "request_hash",
    "traceparent",
    # What the model would default: a driver statement runs no Core defaults, so all are given.
    "status",
    "progress",
    "attempts",
    "created_at",
    "updated_at",
)
_ACTIVE = select(func.count()).select_from(
    select(_jobs.c.status)
    .where(
        _jobs.c.owner_id == bindparam("owner_id"),
        _jobs.c.status.in_([literal(state) for state in sorted(states.ACTIVE)]),
    )
    .limit(bindparam("cap"))
    .subquery()
)
_INSERT_UNDER_CAP = DriverStatement(
    insert(_jobs)
    .from_select(
        _SUBMITTED,
        select(*(bindparam(c, type_=_jobs.c[c].type) for c in _SUBMITTED)).where(
            _ACTIVE.scalar_subquery() < bindparam("cap")
        ),
    )
    .returning(*_jobs.c)
)
_DISPATCHED = rows.row_update(_jobs, "dispatched_at")
# The two statements every job runs go straight to the driver (db.driver): through the Session
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
_WRITES: dict[tuple[str, ...], DriverStatement] = {}

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _traced(
    what: str,
) -> Callable[[Callable[Concatenate[Any, _P], _R]], Callable[Concatenate[Any, _P], _R]]:
    """Make the write a span ``jobcast.db.<what>`` when the span in force records; its first
    argument names the job (a Job, its id, or a new row's values)."""
    name = f"jobcast.db.{what}"

    def wrap(write: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
        @functools.wraps(write)
        def traced(job: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            if not tracing.recording():
                return write(job, *args, **kwargs)
            job_id = job if isinstance(job, str) else job["id"] if isinstance(job, dict) else job.id
            attributes = {"job.id": job_id, "db.operation.name": what}
            with tracing.tracer.start_as_current_span(name, attributes=attributes):
                return write(job, *args, **kwargs)

        return traced

    return wrap


# --- submit and cancel (the API's side) ------------------------------------------------------


@_traced("insert")
def insert_under_cap(values: dict[str, Any], cap: int) -> dict[str, Any] | None:
    """Insert a new job's row (``values`` gives every column of ``_SUBMITTED``) while its owner
    has fewer than ``cap`` unfinished jobs; the row as written, or None at the cap."""
    return _INSERT_UNDER_CAP.run(db.engine, {**values, "cap": cap})


@_traced("free_idempotency_key")
def free_idempotency_key(job: Job) -> None:
    """Take an expired Idempotency-Key off its job, so a new job may use it."""
    job.idempotency_key = None
    db.session.commit()


@_traced("dispatched")
def mark_dispatched(job: Job, when: datetime) -> None:
    """Record that the job's message was sent at ``when``."""
    _write(job, _DISPATCHED, dispatched_at=when)


@_traced("remove")
def remove(job: Job) -> None:
    """Delete a submission whose dispatch failed, dropping whatever the session held."""
    db.session.rollback()
    db.session.delete(job)
    db.session.commit()


@_traced("cancel")
def cancel_unstarted(job: Job) -> bool:
    """Cancel the job if no attempt runs it (it never starts then); whether it did. The job
    object is read again either way: a worker may have moved it meanwhile."""
    cancelled = _changed(
        update(Job)
        .where(
            Job.id == job.id, Job.status.in_(states.sources_of(states.CANCELLED) - {states.RUNNING})
        )
        .values(status=states.CANCELLED, finished_at=utcnow(), message="cancelled")
    )
    db.session.refresh(job)
    return cancelled


# --- an attempt (the worker's side) ----------------------------------------------------------


@_traced("start")
def start(job_id: str) -> dict[str, Any] | None:
    """Mark the job running for one more attempt if it may start (queued or retrying); the row
    as changed, or None. Conditional, so a cancel that commits first wins."""
    return _START.run(db.engine, {"job_id": job_id, "now": utcnow()})


@_traced("progress")
def write_progress(job: Job, percent: float, message: str | None) -> None:
    _write(job, _PROGRESS, progress=percent, message=message, updated_at=utcnow())


@_traced("save")
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


def settle(job: Job) -> None:
    """Roll the session back (a failed attempt's work, or a transaction the database dropped)
    and keep the job's values as they were: reloading them could fail while the database is
    away, and the progress the events showed must not move backwards."""
    values = {c.key: job.__dict__[c.key] for c in _jobs.columns if c.key in job.__dict__}
    with contextlib.suppress(DBAPIError):
        db.session.rollback()
    rows.written(job, values)


def connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away (worth a retry), not that a statement is wrong."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


@_traced("expire_result")
def expire_result(job: Job) -> None:
    """Mark the job's result as expired (its file is deleted); the row stays."""
    job.result_key = None
    job.result = {**(job.result or {}), "expired": True}
    db.session.commit()


# --- the sweeps' conditional changes: two sweepers move a job once ---------------------------


@_traced("move_lost_attempt")
def move_lost_attempt(job: Job, values: dict[str, Any]) -> bool:
    """Write ``values`` to a running job's row if it is still at the attempt that was read
    (same status and attempt count), so two sweepers, or a redelivery that started a new
    attempt meanwhile, never both win; whether it did."""
    return _update_as_read(
        job, values, _jobs.c.status == states.RUNNING, _jobs.c.attempts == job.attempts
    )


@_traced("claim_overdue_retry")
def claim_overdue_retry(job: Job) -> bool:
    """Mark an overdue retry as sent again now, if nobody did since it was read."""
    return _update_as_read(
        job,
        {"updated_at": utcnow()},
        _jobs.c.status == states.RETRYING,
        _jobs.c.attempts == job.attempts,
        _jobs.c.updated_at == job.updated_at,
    )


@_traced("claim_lost_message")
def claim_lost_message(job: Job) -> bool:
    """Mark a queued job whose message is gone as dispatched again now, if nobody did since it
    was read."""
    return _changed(
        update(Job)
        .where(
            Job.id == job.id,
            Job.status == states.QUEUED,
            Job.dispatched_at == job.dispatched_at,
        )
        .values(dispatched_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _changed(statement: Update) -> bool:
    """Run a one-row conditional UPDATE in a transaction of its own; whether it matched."""
    result = db.session.execute(statement)
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def _update_as_read(job: Job, values: dict[str, Any], *as_read: ColumnElement[bool]) -> bool:
    """Write ``values`` to the job's row if it still is ``as_read``; the job object takes them
    when it was."""
    changed = _changed(update(_jobs).where(_jobs.c.id == job.id, *as_read).values(**values))
    if changed:
        rows.written(job, values)
    return changed


def _write(job: Job, statement: Update, **values: Any) -> None:
    """Run a ``rows.row_update`` statement for the job's row and commit it."""
    rows.write(db.session, job, statement, **values)
    db.session.commit()
