"""The job endpoints: thin views over ``jobcast.jobs.service``."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request, send_file
from flask_jwt_extended import current_user, jwt_required, verify_jwt_in_request
from pydantic import BaseModel, Field, ValidationError

from jobcast.errors import NotFound, Unauthorized, ValidationFailed, pydantic_errors
from jobcast.extensions import limiter
from jobcast.http import json_body
from jobcast.jobs import service, states
from jobcast.limits import by_user, limit
from jobcast.realtime.sse import last_event_id, sse_response
from jobcast.runtime import current_runtime

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")


class ListQuery(BaseModel):
    model_config = {"extra": "forbid"}

    status: str | None = Field(None, pattern="^(" + "|".join(sorted(states.ALL)) + ")$")
    limit: int = Field(20, ge=1, le=service.MAX_PAGE)
    cursor: str | None = Field(None, max_length=200)


@bp.get("/job-types")
@jwt_required()
def job_types() -> Response:
    items = [
        {"type": jt.name, "title": jt.title, "params_schema": jt.params_schema()}
        for jt in current_runtime().registry
    ]
    return jsonify({"items": items})


@bp.post("/jobs")
@limiter.limit(limit("submit_user"), key_func=by_user)
@jwt_required()
def submit() -> tuple[Response, int, dict[str, str]]:
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object {type, params}")
    job, replayed = service.submit(
        current_user.id,
        body.get("type"),
        body.get("params"),
        g.request_id,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    headers = {"Location": f"/api/v1/jobs/{job.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(service.to_dict(job)), 200 if replayed else 202, headers


@bp.get("/jobs")
@jwt_required()
def list_jobs() -> Response:
    try:
        query = ListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ValidationFailed("invalid query", errors=pydantic_errors(exc)) from None
    jobs, next_cursor = service.list_owned(
        current_user.id, status=query.status, limit=query.limit, cursor=query.cursor
    )
    return jsonify({"items": [service.to_dict(j) for j in jobs], "next_cursor": next_cursor})


@bp.get("/jobs/<job_id>")
@jwt_required()
def get_job(job_id: str) -> Response:
    return jsonify(service.to_dict(service.get_owned(current_user.id, job_id)))


@bp.post("/jobs/<job_id>/cancel")
@jwt_required()
def cancel(job_id: str) -> tuple[Response, int]:
    return jsonify(service.to_dict(service.cancel(current_user.id, job_id))), 202


@bp.get("/jobs/<job_id>/events")
@jwt_required()
def events(job_id: str) -> Response:
    """Server-Sent Events: the job's history after Last-Event-ID, then live, until it ends."""
    job = service.get_owned(current_user.id, job_id)
    return sse_response(job.id, last_event_id(request.headers.get("Last-Event-ID")))


@bp.get("/jobs/<job_id>/result")
def download(job_id: str) -> Response:
    """The result file, for the owner: by signed link (``?token=``) or by Bearer token."""
    token = request.args.get("token")
    if token is not None:
        owner_id = current_runtime().signer.owner(token, job_id)
        if owner_id is None:
            raise Unauthorized("the download link is invalid or has expired")
    else:
        verify_jwt_in_request()
        owner_id = current_user.id
    job = service.get_owned(owner_id, job_id)
    path = current_runtime().storage.local_path(job.result_key) if job.result_key else None
    if job.status != states.SUCCEEDED or path is None or job.result is None:
        raise NotFound("this job has no result file")
    return send_file(
        path,
        mimetype=job.result.get("content_type", "application/octet-stream"),
        as_attachment=True,
        download_name=job.result.get("filename", path.name),
        max_age=0,
    )
