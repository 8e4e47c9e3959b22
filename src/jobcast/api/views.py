"""The job endpoints: thin views over ``jobcast.jobs.service``."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file, url_for
from pydantic import BaseModel, Field, ValidationError

from jobcast.api.http import guard_blueprint, json_body
from jobcast.api.openapi.describe import JOB_SUBMISSION, Reply, operation
from jobcast.api.openapi.spec import build_spec
from jobcast.api.schemas import STREAM_EVENTS, Job, JobPage, JobTypeList, LLMUsage
from jobcast.errors import NotFound, Unauthorized, ValidationFailed, pydantic_errors
from jobcast.jobs import service, states
from jobcast.llm import quota
from jobcast.realtime.sse import last_event_id, sse_response
from jobcast.runtime import current_runtime

bp = Blueprint("jobcast", __name__)
guard_blueprint(bp, lambda: current_runtime().settings.max_body_bytes)


def current_owner() -> str:
    """The owner of this request, as the app's identity says; 401 when there is none."""
    owner = current_runtime().identity.request_owner()
    if owner is None:
        raise Unauthorized("sign in first", headers={"WWW-Authenticate": "Bearer"})
    return owner


_GET_JOB_LINK = {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}}


class ListQuery(BaseModel):
    model_config = {"extra": "forbid"}

    status: str | None = Field(None, pattern="^(" + "|".join(sorted(states.ALL)) + ")$")
    limit: int = Field(20, ge=1, le=service.MAX_PAGE)
    cursor: str | None = Field(None, max_length=200)


@bp.get("/openapi.json")
@operation(
    summary="This OpenAPI document",
    tag="docs",
    operation_id="getOpenApi",
    auth="none",
    backed=False,
    replies={200: Reply("The OpenAPI 3.1 document of this server.", schema={"type": "object"})},
)
def openapi_json() -> Response:
    """Built once per app: its routes and job types are fixed once it serves."""
    rt = current_runtime()
    if rt.openapi is None:
        spec = build_spec(current_app, rt.registry, rt.sign_in)
        rt.openapi = json.dumps(spec, indent=1).encode()
    return Response(rt.openapi, mimetype="application/json")


@bp.get("/job-types")
@operation(
    summary="The job types this server runs",
    tag="jobs",
    operation_id="listJobTypes",
    replies={200: Reply("Every registered job type with its params schema.", JobTypeList)},
)
def job_types() -> Response:
    current_owner()
    items = [
        {"type": jt.name, "title": jt.title, "params_schema": jt.params_schema()}
        for jt in current_runtime().registry
    ]
    return jsonify({"items": items})


@bp.get("/me/usage")
@operation(
    summary="The caller's LLM usage, limits and what is left",
    tag="jobs",
    operation_id="getMyUsage",
    replies={200: Reply("Tokens today (UTC), cost this month, LLM jobs at once.", LLMUsage)},
)
def my_usage() -> Response:
    owner = current_owner()
    rt = current_runtime()
    found = quota.usage(rt.settings, rt.redis, owner)
    return jsonify({"llm_enabled": rt.settings.llm_enabled, **found.as_dict()})


@bp.post("/jobs")
@operation(
    summary="Submit a job",
    tag="jobs",
    operation_id="submitJob",
    body=JOB_SUBMISSION,
    headers=("Idempotency-Key",),
    replies={
        202: Reply(
            "Accepted: the job is queued.",
            Job,
            headers=("Location",),
            links={"GetJob": _GET_JOB_LINK},
        ),
        200: Reply(
            "The job an earlier request with the same Idempotency-Key created.",
            Job,
            headers=("Location", "Idempotent-Replayed"),
            links={"GetJob": _GET_JOB_LINK},
        ),
    },
    rate_limited=True,
)
def submit() -> tuple[Response, int, dict[str, str]]:
    """The params are validated by the type's params model, then checked against what the
    server knows at submit: for `email.send`, whether `JOBCAST_EMAIL_RECIPIENTS` lets the caller
    write to `to`; for `demo.steps`, whether the loop fits the time limit. A job sure to fail is
    refused with the 422 of invalid params (`errors[0].field` names the param), or a 503 when the
    server cannot run the type (`export.xlsx` without its configured engine), and nothing is
    written: no job row, no event, no queued message."""
    owner = current_owner()
    rt = current_runtime()
    headers = rt.submit_limit.hit(rt.settings.limit_submit_user, owner) if rt.submit_limit else {}
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object {type, params}")
    job, replayed = service.submit(
        owner,
        body.get("type"),
        body.get("params"),
        g.request_id,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    headers["Location"] = url_for(".get_job", job_id=job.id)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(service.to_dict(job)), 200 if replayed else 202, headers


@bp.get("/jobs")
@operation(
    summary="The caller's jobs, newest first",
    tag="jobs",
    operation_id="listJobs",
    query=ListQuery,
    replies={200: Reply("One page of jobs.", JobPage)},
)
def list_jobs() -> Response:
    owner = current_owner()
    try:
        query = ListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ValidationFailed("invalid query", errors=pydantic_errors(exc)) from None
    jobs, next_cursor = service.list_owned(
        owner, status=query.status, limit=query.limit, cursor=query.cursor
    )
    return jsonify({"items": [service.to_dict(j) for j in jobs], "next_cursor": next_cursor})


@bp.get("/jobs/<job_id>")
@operation(
    summary="One of the caller's jobs",
    tag="jobs",
    operation_id="getJob",
    replies={200: Reply("The job.", Job)},
    errors=(404,),
)
def get_job(job_id: str) -> Response:
    return jsonify(service.to_dict(service.get_owned(current_owner(), job_id)))


@bp.post("/jobs/<job_id>/cancel")
@operation(
    summary="Cancel a job",
    tag="jobs",
    operation_id="cancelJob",
    replies={202: Reply("Cancelled, or (running) asked to stop at its next checkpoint.", Job)},
    errors=(404, 409),
)
def cancel(job_id: str) -> tuple[Response, int]:
    return jsonify(service.to_dict(service.cancel(current_owner(), job_id))), 202


@bp.get("/jobs/<job_id>/events")
@operation(
    summary="The job's events as Server-Sent Events",
    tag="jobs",
    operation_id="streamJobEvents",
    headers=("Last-Event-ID",),
    replies={
        200: Reply(
            "`id: <seq>`, `event: <name>`, `data: <payload as JSON>` per event, `: keep-alive`"
            " comments while quiet; ends after the terminal event, or after auth.expired or"
            " auth.revoked once the token stops being valid.",
            media_type="text/event-stream",
            events=STREAM_EVENTS,
        )
    },
    errors=(404, 429),
)
def events(job_id: str) -> Response:
    """Server-Sent Events: the job's history after Last-Event-ID, then live, until it ends."""
    grant = current_runtime().identity.connection_grant(None)
    if grant is None:
        raise Unauthorized("sign in first", headers={"WWW-Authenticate": "Bearer"})
    job = service.get_owned(grant.owner, job_id)
    after = last_event_id(request.headers.get("Last-Event-ID"))
    return sse_response(job.id, after, grant)


@bp.get("/jobs/<job_id>/result")
@operation(
    summary="Download the job's result file",
    tag="jobs",
    operation_id="downloadJobResult",
    auth="download",
    replies={
        200: Reply(
            "The file, as an attachment, in the result's content_type; conditional and range"
            " requests work.",
            media_type="*/*",
            headers=("Content-Disposition",),
        )
    },
    errors=(404,),
)
def download(job_id: str) -> Response:
    """The result file, for the owner: by signed link (``?token=``) or by Bearer token."""
    token = request.args.get("token")
    if token is not None:
        owner_id = current_runtime().signer.owner(token, job_id)
        if owner_id is None:
            raise Unauthorized("the download link is invalid or has expired")
    else:
        owner_id = current_owner()
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
