"""The Celery side: one generic task runs any registered job type by job id.

Task id = job id. Tasks are acknowledged late and rejected when their worker dies, so a crashed
worker's job is delivered again; ``start_attempt`` refuses to run a job that already finished,
so a duplicate delivery never runs a job twice to completion.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from jobcast.dbtypes import utcnow
from jobcast.errors import JobCancelled, JobError
from jobcast.extensions import db
from jobcast.jobs import service
from jobcast.jobs.context import JobContext
from jobcast.jobs.models import Job
from jobcast.logs import correlated
from jobcast.runtime import Runtime, current_runtime

log = logging.getLogger(__name__)


class TaskReporter:
    """Connects a JobContext to the service: events every call, row writes throttled."""

    def __init__(self, job: Job, runtime: Runtime) -> None:
        self.job = job
        self.runtime = runtime
        self._db_interval = runtime.settings.db_progress_interval
        self._last_db_write = time.monotonic()

    def progress(self, percent: float, message: str | None) -> None:
        now = time.monotonic()
        persist = percent >= 100.0 or now - self._last_db_write >= self._db_interval
        if persist:
            self._last_db_write = now
        service.record_progress(self.job, percent, message, persist=persist)

    def cancel_requested(self) -> bool:
        return service.cancel_requested(self.job.id)

    def staging_path(self, filename: str) -> Path:
        return self.runtime.storage.staging_path(
            self.job.owner_id, self.job.id, self.job.attempts, filename
        )


def run_job(task: Task, job_id: str) -> None:
    """Run one attempt of job ``job_id``; record every outcome on the job before Celery sees it."""
    rt = current_runtime()
    job = db.session.get(Job, job_id)
    with correlated(request_id=job.request_id if job else None, job_id=job_id):
        job = service.start_attempt(job_id)
        if job is None:
            log.info("job %s is finished or gone; delivery ignored", job_id)
            return
        job_type = rt.registry.get(job.type)
        if job_type is None:
            service.fail(job, {"type": "unknown_type", "message": f"no job type {job.type!r}"})
            return
        log.info("job %s (%s) attempt %d started", job.id, job.type, job.attempts)
        ctx = JobContext(
            job_id=job.id,
            owner_id=job.owner_id,
            params=job_type.params.model_validate(job.params),
            attempt=job.attempts,
            request_id=job.request_id,
            reporter=TaskReporter(job, rt),
            interval=rt.settings.progress_interval,
            logger=log,
        )
        try:
            result = job_type.func(ctx) or {}
            ctx.flush()
            _finish(rt, job, ctx, result)
        except JobCancelled:
            _abandon(rt, job)
            service.mark_cancelled(job)
            log.info("job %s cancelled", job.id)
        except SoftTimeLimitExceeded:
            _abandon(rt, job)
            service.fail(
                job,
                {
                    "type": "timeout",
                    "message": f"the job ran longer than {job_type.time_limit:g} s",
                },
            )
            raise
        except job_type.retry_on as exc:
            _abandon(rt, job)
            error = {"type": getattr(exc, "code", "transient"), "message": str(exc)}
            if job.attempts > job_type.max_retries:
                service.fail(job, error)
                raise
            delay = job_type.retry_delay(job.attempts)
            service.schedule_retry(job, error, utcnow() + timedelta(seconds=delay))
            log.warning(
                "job %s attempt %d failed (%s); retry in %.1f s", job.id, job.attempts, exc, delay
            )
            raise task.retry(exc=exc, countdown=delay, max_retries=None) from None
        except JobError as exc:
            _abandon(rt, job)
            service.fail(job, {"type": exc.code, "message": str(exc)})
            raise
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job.id)
            _abandon(rt, job)
            service.fail(
                job,
                {
                    "type": "internal",
                    "message": f"the job failed unexpectedly ({type(exc).__name__})",
                },
            )
            raise


def _finish(rt: Runtime, job: Job, ctx: JobContext, result: dict[str, Any]) -> None:
    result_key = None
    if ctx.result_file is not None:
        path, filename, content_type = ctx.result_file
        if not path.is_file():
            raise JobError(f"the job did not write its result file {filename}", code="internal")
        stored = rt.storage.commit(job.owner_id, job.id, path)
        result = {
            **result,
            "filename": stored.filename,
            "size": stored.size,
            "content_type": content_type,
        }
        result_key = stored.key
    service.succeed(job, result, result_key)
    log.info("job %s succeeded", job.id)


def _abandon(rt: Runtime, job: Job) -> None:
    """Forget the failed attempt: its uncommitted rows and its partial file."""
    db.session.rollback()
    rt.storage.discard(job.owner_id, job.id)


def expire_results() -> int:
    """Beat task: delete result files past the retention; returns how many went."""
    rt = current_runtime()
    cutoff = utcnow() - timedelta(hours=rt.settings.result_retention_hours)
    return service.expire_results(cutoff)


def register_tasks(celery: Celery) -> None:
    celery.task(
        name="jobcast.run",
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )(run_job)
    celery.task(name="jobcast.expire_results", ignore_result=True)(expire_results)
