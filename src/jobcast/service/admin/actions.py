"""What an admin does to any user's job, each with its entry in the audit log: cancel it, or
run a failed or cancelled one again as a new job of the same owner."""

from __future__ import annotations

from jobcast.db.tables import Job
from jobcast.errors import Conflict
from jobcast.jobs import service, states
from jobcast.service.admin import audit, queries
from jobcast.service.admin.audit import Actor

#: What may be run again: a job that did not finish its work. A succeeded one would repeat
#: its effects (an email sent twice) for no failure to fix.
RERUNNABLE = frozenset({states.FAILED, states.CANCELLED})


def cancel(actor: Actor, job_id: str) -> Job:
    """Cancel any user's job as its owner would (``service.cancel``, with the job's owner)."""
    job = queries.job(job_id)
    facts = {"owner_id": job.owner_id, "type": job.type, "status_before": job.status}
    with audit.written_ahead(actor, "job.cancel", "job", job.id, facts) as entry:
        job = service.cancel(job.owner_id, job.id)
        audit.note(entry, status_after=job.status)
    return job


def rerun(actor: Actor, job_id: str, request_id: str | None) -> Job:
    """Submit a new job with the type and params of a failed or cancelled one, for its owner.

    It goes through ``service.submit`` as the owner's own submission would: the params are
    validated again, and the owner's cap on unfinished jobs applies.
    """
    source = queries.job(job_id)
    if source.status not in RERUNNABLE:
        raise Conflict(f"only a failed or cancelled job can be re-run; this one is {source.status}")
    facts = {"owner_id": source.owner_id, "type": source.type, "source_status": source.status}
    with audit.written_ahead(actor, "job.rerun", "job", source.id, facts) as entry:
        job, _ = service.submit(source.owner_id, source.type, source.params, request_id)
        audit.note(entry, new_job_id=job.id)
    return job
