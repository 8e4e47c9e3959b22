"""The admin API, ``/api/v1/admin``: thin views over ``queries`` and ``actions``.

Every path answers 404 to anyone but an admin (``guard``, before any view runs), so each
operation below declares that 404 too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request, url_for
from pydantic import BaseModel, ValidationError

from jobcast.api.openapi.describe import Reply, operation
from jobcast.db.tables import Job
from jobcast.errors import ValidationFailed, pydantic_errors
from jobcast.jobs import service
from jobcast.jobs.notify import iso
from jobcast.service.admin import actions, guard, queries
from jobcast.service.admin.audit import Actor
from jobcast.service.admin.schemas import (
    AdminEventLog,
    AdminJob,
    AdminJobPage,
    AuditFilters,
    AuditPage,
    JobFilters,
)

bp = Blueprint("admin", __name__, url_prefix=guard.PREFIX)
bp.before_app_request(guard.admins_only)

Q = TypeVar("Q", bound=BaseModel)


def _query(model: type[Q]) -> Q:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ValidationFailed("invalid query", errors=pydantic_errors(exc)) from None


def _admin_job(job: Job, emails: dict[str, str] | None = None) -> dict[str, Any]:
    emails = queries.owner_emails([job]) if emails is None else emails
    return {
        **service.to_dict(job),
        "owner": {"id": job.owner_id, "email": emails.get(job.owner_id)},
        "request_id": job.request_id,
        "dispatched_at": iso(job.dispatched_at),
        "updated_at": iso(job.updated_at),
    }


def _actor() -> Actor:
    return Actor.admin(guard.current_admin().id, g.get("request_id"))


@bp.get("/jobs")
@operation(
    summary="Every user's jobs, newest first",
    tag="admin",
    operation_id="adminListJobs",
    query=JobFilters,
    replies={200: Reply("One page of jobs that pass the filters.", AdminJobPage)},
    errors=(404,),
)
def list_jobs() -> Response:
    """Admins only: anyone else gets 404, as for a path that does not exist. Filters combine;
    the cursor pages through the same filters."""
    jobs, next_cursor = queries.list_jobs(_query(JobFilters))
    emails = queries.owner_emails(jobs)
    return jsonify({"items": [_admin_job(j, emails) for j in jobs], "next_cursor": next_cursor})


@bp.get("/jobs/<job_id>")
@operation(
    summary="Any user's job, with its owner",
    tag="admin",
    operation_id="adminGetJob",
    replies={200: Reply("The job.", AdminJob)},
    errors=(404,),
)
def get_job(job_id: str) -> Response:
    """Admins only: anyone else gets 404, as for a path that does not exist."""
    return jsonify(_admin_job(queries.job(job_id)))


@bp.get("/jobs/<job_id>/events")
@operation(
    summary="A job's event log",
    tag="admin",
    operation_id="adminGetJobEvents",
    replies={200: Reply("Every recorded event of the job, oldest first (JSON).", AdminEventLog)},
    errors=(404,),
)
def job_events(job_id: str) -> Response:
    """Admins only: anyone else gets 404, as for a path that does not exist. The log a
    client's replay reads, whole, as one JSON document (not a stream); kept until
    JOBCAST_EVENT_RETENTION_HOURS after the job's last event."""
    job = queries.job(job_id)
    items = [{"event": name, "data": data} for name, data in queries.event_log(job.id)]
    return jsonify({"job_id": job.id, "items": items})


@bp.post("/jobs/<job_id>/cancel")
@operation(
    summary="Cancel any user's job",
    tag="admin",
    operation_id="adminCancelJob",
    replies={202: Reply("Cancelled, or (running) asked to stop at its next checkpoint.", AdminJob)},
    errors=(404, 409),
)
def cancel(job_id: str) -> tuple[Response, int]:
    """Admins only: anyone else gets 404, as for a path that does not exist. As the owner's
    own cancel: the owner's clients get job.cancelled. Recorded in the audit log
    (job.cancel)."""
    return jsonify(_admin_job(actions.cancel(_actor(), job_id))), 202


@bp.post("/jobs/<job_id>/rerun")
@operation(
    summary="Run a failed or cancelled job again",
    tag="admin",
    operation_id="adminRerunJob",
    replies={202: Reply("The new job, queued.", AdminJob, headers=("Location",))},
    errors=(404, 409, 422, 429),
)
def rerun(job_id: str) -> tuple[Response, int, dict[str, str]]:
    """Admins only: anyone else gets 404, as for a path that does not exist. A new job with
    the same type and params, for the same owner, submitted as the owner's own would be: 409
    unless the job failed or was cancelled, 422 when its params no longer validate, 429 at the
    owner's cap on unfinished jobs. Recorded in the audit log (job.rerun, with new_job_id)."""
    job = actions.rerun(_actor(), job_id, g.get("request_id"))
    return jsonify(_admin_job(job)), 202, {"Location": url_for(".get_job", job_id=job.id)}


@bp.get("/audit")
@operation(
    summary="The audit log, newest first",
    tag="admin",
    operation_id="adminListAudit",
    query=AuditFilters,
    replies={200: Reply("One page of admin actions.", AuditPage)},
    errors=(404,),
)
def audit_log() -> Response:
    """Admins only: anyone else gets 404, as for a path that does not exist. Every cancel,
    re-run, and admin role granted or taken back (on the command line too)."""
    entries, next_cursor = queries.audit_entries(_query(AuditFilters))
    return jsonify({"items": [e.to_dict() for e in entries], "next_cursor": next_cursor})
