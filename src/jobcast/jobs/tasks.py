"""The Celery side: one generic task runs any registered job type by job id.

Celery's tools (Flower, ``celery inspect``, worker logs) still show each job under its own type,
the message's ``shadow`` name (``jobcast.jobs.tooling``).

Task id = job id. Tasks are acknowledged late and rejected when their worker dies, so a crashed
worker's job is delivered again. ``start_attempt`` refuses a job that already finished and, by
the job's lease, a second delivery while an attempt is alive: that delivery is retried after
the lease's lifetime, so it runs only if the live attempt has died meanwhile. A worker that died
outright is not waited for until the broker gives its messages back: ``recover_lost`` (beat)
finds running jobs whose lease lapsed and runs them again, or fails them.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import AbstractContextManager, nullcontext, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.worker.request import Request
from flask import Flask, current_app, has_app_context
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.db.types import utcnow
from jobcast.errors import JobCancelled, JobError
from jobcast.jobs import lifecycle, notify, recovery, store
from jobcast.jobs.context import JobContext
from jobcast.jobs.lease import Lease
from jobcast.logs import JobTags, correlated, remember_job, tag_job
from jobcast.runtime import Runtime, current_runtime
from jobcast.telemetry import tracing

log = logging.getLogger(__name__)


class Superseded(Exception):
    """This attempt lost its lease (it froze, or lost Redis, past the lease's lifetime) and the
    recovery sweep or a new attempt owns the job now: it stops without touching the job."""


class TaskReporter:
    """Connects a JobContext to the service: events every call, row writes throttled."""

    def __init__(self, job: Job, runtime: Runtime, lease: Lease) -> None:
        self.job = job
        self.runtime = runtime
        self.lease = lease
        self._db_interval = runtime.settings.db_progress_interval
        self._last_db_write = time.monotonic()

    def progress(self, percent: float, message: str | None) -> None:
        now = time.monotonic()
        persist = percent >= 100.0 or now - self._last_db_write >= self._db_interval
        if persist:
            self._last_db_write = now
        if self.lease.lost:
            raise Superseded(self.job.id)
        lifecycle.record_progress(self.job, percent, message, persist=persist)

    def output(self, index: int, text: str, restart: bool) -> None:
        if self.lease.lost:
            raise Superseded(self.job.id)
        notify.announce_output(self.job, index, text, restart)

    def cancel_requested(self) -> bool:
        return notify.cancel_requested(self.job.id)

    def staging_path(self, filename: str) -> Path:
        return self.runtime.storage.staging_path(
            self.job.owner_id, self.job.id, self.job.attempts, filename
        )


def run_job(task: Task, job_id: str) -> None:
    """Run one attempt of job ``job_id``; record every outcome on the job before Celery sees it.

    The attempt is one span, in the submit's trace (the message's traceparent, the row's)."""
    rt = current_runtime()
    request = task.request
    job_type = request.shadow
    parent = request.get(tracing.TRACEPARENT_HEADER)
    with (
        correlated(request_id=None, job_id=job_id, job_type=job_type),
        tracing.job_span(job_id, job_type, parent) as span,
    ):
        try:
            started = lifecycle.start_attempt(job_id)
        except lifecycle.Duplicate:
            wait = rt.settings.job_lease_seconds
            log.info("job %s has a live attempt; looking again in %.0f s", job_id, wait)
            raise _retry(task, countdown=wait) from None
        except (SQLAlchemyError, RedisError) as exc:
            # Nothing is recorded yet and the job cannot be read: keep the message and try
            # again, rather than let Celery drop a job nobody could mark failed.
            with suppress(SQLAlchemyError):
                db.session.rollback()
            log.warning("job %s cannot start (%s); retrying in 5 s", job_id, type(exc).__name__)
            raise _retry(task, countdown=5) from None
        if started is None:
            log.info("job %s is finished or gone; delivery ignored", job_id)
            return
        job, lease = started
        span.set_attribute("job.attempt", job.attempts)
        tag_job(request_id=job.request_id, job_type=job.type, owner=job.owner_id)
        remember_job(
            job.id, JobTags(job.request_id, job.type, job.owner_id, tracing.trace_id(parent))
        )
        try:
            _attempt(task, rt, job, lease)
        finally:
            # A later delivery of a finished job only finds it finished, so its lease may lapse
            # by itself (one round trip less per job); one that will run again frees it now.
            if job.is_terminal:
                lease.let_lapse()
            else:
                lease.release()


def _attempt(task: Task, rt: Runtime, job: Job, lease: Lease) -> None:
    """Run the job function once and record the outcome; exceptions reach Celery."""
    job_type = rt.registry.get(job.type)
    if job_type is None:
        lifecycle.fail(job, {"type": "unknown_type", "message": f"no job type {job.type!r}"})
        return
    log.info("job %s (%s) attempt %d started", job.id, job.type, job.attempts)
    ctx = JobContext(
        job_id=job.id,
        owner_id=job.owner_id,
        params=job_type.params.model_validate(job.params),
        attempt=job.attempts,
        request_id=job.request_id,
        reporter=TaskReporter(job, rt, lease),
        interval=rt.settings.progress_interval,
        output_interval=rt.settings.output_interval,
        logger=log,
    )
    try:
        with _soft_time_limit(job_type.time_limit):
            result = job_type.func(ctx) or {}
            ctx.flush()
        if lease.lost:
            raise Superseded(job.id)
        _finish(rt, job, ctx, result)
    except Superseded:
        store.settle(job)
        log.warning("job %s attempt %d lost its lease; another owns the job", job.id, job.attempts)
    except JobCancelled as exc:
        _abandon(rt, job)
        lifecycle.mark_cancelled(job, exc.result)
        log.info("job %s cancelled", job.id)
    except SoftTimeLimitExceeded:
        _abandon(rt, job)
        lifecycle.fail(
            job,
            {"type": "timeout", "message": f"the job ran longer than {job_type.time_limit:g} s"},
        )
        raise
    except job_type.retry_on as exc:
        _abandon(rt, job)
        error = {"type": getattr(exc, "code", "transient"), "message": str(exc)}
        if job.attempts > job_type.max_retries:
            lifecycle.fail(job, error)
            raise
        delay = job_type.retry_delay(job.attempts)
        lifecycle.schedule_retry(job, error, utcnow() + timedelta(seconds=delay))
        log.warning(
            "job %s attempt %d failed (%s); retry in %.1f s", job.id, job.attempts, exc, delay
        )
        raise _retry(task, exc=exc, countdown=delay) from None
    except JobError as exc:
        _abandon(rt, job)
        lifecycle.fail(job, {"type": exc.code, "message": str(exc)})
        raise
    except _gevent_timeouts():
        # Celery's hard limit on the gevent pool (a job that ignored the soft one).
        _abandon(rt, job)
        lifecycle.fail(job, {"type": "timeout", "message": "the job hit its hard time limit"})
        raise
    except Exception as exc:
        if store.connection_error(exc):
            # The database went away under the attempt: what it wrote is rolled back, so it
            # cannot be recorded as done. It keeps the job running and frees its lease; the
            # recovery sweep runs it again (or fails it) once the database is back.
            _abandon(rt, job)
            log.warning(
                "job %s attempt %d lost the database; left to recovery", job.id, job.attempts
            )
            raise
        log.exception("job %s failed unexpectedly", job.id)
        _abandon(rt, job)
        lifecycle.fail(
            job,
            {"type": "internal", "message": f"the job failed unexpectedly ({type(exc).__name__})"},
        )
        raise


def _retry(task: Task, **options: Any) -> Retry:
    """``task.retry`` without a limit, its message shown as the first one was: Celery keeps
    the job type (``shadow``) but would show the new message's args as a bare job id."""
    request = task.request
    return task.retry(
        max_retries=None,
        argsrepr=getattr(request, "argsrepr", None),
        kwargsrepr=getattr(request, "kwargsrepr", None),
        **options,
    )


def _soft_time_limit(seconds: float) -> AbstractContextManager[object]:
    """Raise SoftTimeLimitExceeded in the job after ``seconds``.

    The prefork pool does this itself (a signal to the child); Celery's gevent pool only has
    the hard limit, which kills the greenlet before jobcast can record the failure, so on
    gevent the soft limit is a gevent.Timeout around the job function.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return nullcontext()
    timeout: AbstractContextManager[object] = sys.modules["gevent"].Timeout(
        seconds, SoftTimeLimitExceeded(f"soft time limit ({seconds:g} s) exceeded")
    )
    return timeout


def _gevent_timeouts() -> tuple[type[BaseException], ...]:
    """gevent's Timeout where this process runs gevent (its pool); nothing elsewhere, so the
    core does not need gevent installed."""
    gevent = sys.modules.get("gevent")
    return (gevent.Timeout,) if gevent is not None else ()


def _finish(rt: Runtime, job: Job, ctx: JobContext, result: dict[str, Any]) -> None:
    result_key = None
    if ctx.result_file is not None:
        path, filename, content_type = ctx.result_file
        if not path.is_file():
            raise JobError(f"the job did not write its result file {filename}", code="internal")
        with tracing.child_span("jobcast.result.store", {"job.id": job.id}) as span:
            stored = rt.storage.commit(job.owner_id, job.id, path)
            span.set_attribute("jobcast.result.size", stored.size)
        result = {
            **result,
            "filename": stored.filename,
            "size": stored.size,
            "content_type": content_type,
        }
        result_key = stored.key
    lifecycle.succeed(job, result, result_key)
    log.info("job %s succeeded", job.id)


def _abandon(rt: Runtime, job: Job) -> None:
    """Forget the failed attempt's uncommitted rows and partial file, but keep the progress
    its events already showed, so the final event does not move the bar backwards."""
    store.settle(job)
    rt.storage.discard(job.owner_id, job.id)


def expire_results() -> int:
    """Beat task: delete result files past the retention; returns how many went."""
    rt = current_runtime()
    cutoff = utcnow() - timedelta(hours=rt.settings.result_retention_hours)
    return lifecycle.expire_results(cutoff)


def redispatch_stuck() -> int:
    """Beat task: send again the queued jobs whose dispatch never completed."""
    settings = current_runtime().settings
    return _survive(
        "redispatch_stuck", recovery.redispatch_stuck, settings.queued_redispatch_seconds
    )


def recover_lost() -> int:
    """Beat task: run again (or fail) the running jobs whose worker was lost, send again the
    retries and queued jobs whose message was lost; returns how many jobs it moved."""
    return _survive("recover_lost", recovery.recover_lost)


def _survive(name: str, sweep: Any, *args: Any) -> int:
    """Run a sweep; when the database or Redis is away, log it and let the next run try: a
    sweep that raised would only fill the log with tracebacks until they are back."""
    try:
        return int(sweep(*args))
    except (SQLAlchemyError, RedisError, BrokerError) as exc:
        with suppress(SQLAlchemyError):
            db.session.rollback()
        log.warning("sweep %s skipped: %s unavailable (%s)", name, type(exc).__name__, exc)
        return 0


class JobRequest(Request):
    """Celery's request for ``jobcast.run``: remembers the job's request id, type and trace as
    the message arrives, so even Celery's own "received" line about the job is correlated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        headers = self.request_dict
        remember_job(
            self.id,
            JobTags(
                headers.get("request_id"),
                headers.get("shadow"),
                trace_id=tracing.trace_id(headers.get(tracing.TRACEPARENT_HEADER)),
            ),
        )


def register_tasks(celery: Celery, app: Flask) -> None:
    """Register jobcast's tasks on ``celery`` (the host's or jobcast's own), each running inside
    ``app``'s context whatever task class the host's Celery has. Each call names its queue
    (``apply_async(queue=...)``, or a beat entry's ``options``): Celery deprecates a task's own
    ``queue``, and the host's ``task_routes`` are the host's."""
    base = _in_app_context(celery.Task, app)
    # shared=False: Celery's default would also add each task to every other Celery app the
    # process finalizes later, a host's own included.
    celery.task(
        name="jobcast.run",
        base=base,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        Request=JobRequest,
        # Unlimited: a delivery that waits for a live attempt's lease, or for the database,
        # retries until it can run. ``task.retry(max_retries=None)`` alone falls back to this
        # (Celery's default is 3, after which the job would stay queued forever); the job's own
        # retry budget is counted in its row (``attempts``).
        max_retries=None,
        # Celery otherwise builds a result backend per thread to call its process_cleanup()
        # after every task: on the gevent pool, one per job. jobcast stores no results.
        backend=celery.backend,
    )(run_job)
    for name, sweep in (
        ("jobcast.expire_results", expire_results),
        ("jobcast.redispatch_stuck", redispatch_stuck),
        ("jobcast.recover_lost", recover_lost),
    ):
        celery.task(name=name, base=base, shared=False, ignore_result=True)(sweep)


def _in_app_context(task_class: type[Task], app: Flask) -> type[Task]:
    class AppContextTask(task_class):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
                return super().__call__(*args, **kwargs)
            with app.app_context():
                return super().__call__(*args, **kwargs)

    return AppContextTask
