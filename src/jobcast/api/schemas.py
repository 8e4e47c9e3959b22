"""The documents the HTTP API answers with, as pydantic models.

They describe the API (the OpenAPI document is built from them); they never render it. The views
return plain dicts as they always have, and ``tests/integration/test_openapi.py`` and the
schemathesis run hold the two together. Request bodies need no models here: the views already
validate them with their own (``auth.views.Credentials``, ``jobs.api.ListQuery``, the job types'
params models), and the document is built from those same classes.

A member that is sometimes absent but never ``null`` is ``X | SkipJsonSchema[None]`` declared
with ``_absent()``: in the published schema it is neither required nor nullable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

#: The states of ``jobcast.jobs.states.ALL`` (a test checks the two agree).
JobStatus = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled"]
#: The event names of ``jobcast.jobs.states.EVENT_FOR_STATE`` plus ``job.progress`` and
#: ``job.output``.
JobEventName = Literal[
    "job.queued",
    "job.started",
    "job.progress",
    "job.output",
    "job.retrying",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
]


#: The OpenTelemetry trace of the job's submit, which its every attempt joins.
TraceId = Annotated[
    str | None,
    Field(
        pattern="^[0-9a-f]{32}$",
        description="The OpenTelemetry trace id (32 hex digits) of the job's submit and"
        " attempts; null when tracing was off at submit.",
    ),
]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _absent(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class _Document(BaseModel):
    # Closed: a member the server adds without documenting it fails the contract tests.
    model_config = ConfigDict(extra="forbid")


class FieldError(_Document):
    """One reason a request was refused."""

    field: str | None = Field(description="Dotted path of the member, or null for the whole body.")
    message: str
    type: str = Field(
        description="pydantic's error type, or enum, value_error, idempotency_mismatch."
    )


class Problem(_Document):
    """An RFC 9457 problem document: every error jobcast answers."""

    type: str = Field(
        description="Stable per kind of error: https://jobcast.dev/problems/<slug>.",
        examples=["https://jobcast.dev/problems/validation"],
    )
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] | SkipJsonSchema[None] = _absent("Only on validation failures.")
    limit: float | SkipJsonSchema[None] = _absent("llm-quota: the allowance (tokens, cost, jobs).")
    used: float | SkipJsonSchema[None] = _absent("llm-quota: how much of it is used.")
    remaining: float | SkipJsonSchema[None] = _absent("llm-quota: what is left of it.")
    request_id: str | SkipJsonSchema[None] = _absent(
        "The request's X-Request-ID; quote it when reporting."
    )


class User(_Document):
    id: int
    email: str


class Tokens(_Document):
    """A signed-in session: a short-lived access token and a single-use refresh token."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="The access token's lifetime in seconds.")


class JobErrorInfo(_Document):
    type: str = Field(description="job_error, transient, timeout, internal, or a job's own code.")
    message: str


class Job(_Document):
    """The job object."""

    id: UUID
    type: str
    status: JobStatus
    progress: float = Field(ge=0, le=100)
    message: str | None
    params: dict[str, Any] = Field(description="The validated params, defaults filled in.")
    result: dict[str, Any] | None = Field(
        description=(
            "null until success; what the job returned, plus filename, size, content_type and"
            " download_url for a file (expired: true once retention removed it)."
        )
    )
    error: JobErrorInfo | None
    attempts: int = Field(ge=0)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    trace_id: TraceId


class JobEvent(_Document):
    """One job event, the same over Socket.IO and SSE."""

    job_id: UUID
    seq: int = Field(ge=1, description="1, 2, 3, ... per job, without gaps in the log.")
    epoch: int = Field(
        ge=0,
        description="The numbering seq belongs to: a larger epoch (Redis lost the job's counter)"
        " numbers from 1 again. Order events by (epoch, seq).",
    )
    status: JobStatus = Field(description="The job's status after the event.")
    progress: float = Field(ge=0, le=100)
    message: str | None
    ts: float = Field(description="Server time of the event, Unix seconds.")
    trace_id: TraceId
    attempt: int | SkipJsonSchema[None] = _absent("job.started, job.retrying: the attempt.")
    error: JobErrorInfo | SkipJsonSchema[None] = _absent("job.retrying, job.failed.")
    retry_at: datetime | SkipJsonSchema[None] = _absent("job.retrying: the next attempt.")
    result: dict[str, Any] | SkipJsonSchema[None] = _absent(
        "job.succeeded, and job.cancelled when the job kept what it made: as in the job."
    )
    index: int | SkipJsonSchema[None] = Field(
        default=None,
        ge=0,
        description="job.output: where text starts in the job's output, in Unicode code points.",
        json_schema_extra=_drop_default,
    )
    text: str | SkipJsonSchema[None] = _absent(
        "job.output: the next piece of the output; every piece in seq order is the whole."
    )
    restart: bool | SkipJsonSchema[None] = _absent(
        "job.output: the output starts again (a retry after text was sent): drop what you had."
    )


SignOutEventName = Literal["auth.expired", "auth.revoked"]


class SignOut(_Document):
    """Why a stream or socket ends: its access token expired, or it or its sign-in was revoked."""

    reason: Literal["expired", "revoked"]


#: The events of a job's SSE stream, with the model of each one's data.
STREAM_EVENTS: dict[str, type[BaseModel]] = {
    **dict.fromkeys(get_args(JobEventName), JobEvent),
    **dict.fromkeys(get_args(SignOutEventName), SignOut),
}


class Allowance(_Document):
    used: float = Field(ge=0)
    limit: float | None = Field(description="null: no limit.")
    remaining: float | None = Field(ge=0, description="null: no limit.")


class LLMUsage(_Document):
    """One user's LLM allowance (``JOBCAST_LLM_DAILY_TOKENS``, ``..._MONTHLY_BUDGET``,
    ``..._MAX_CONCURRENT``) and their use of it."""

    llm_enabled: bool = Field(description="Whether this server runs LLM jobs at all.")
    tokens_today: Allowance = Field(description="Prompt and completion tokens, this UTC day.")
    cost_this_month: Allowance = Field(description="Estimated cost, this UTC month.")
    active_jobs: Allowance = Field(description="LLM jobs queued, running or retrying.")


class JobPage(_Document):
    items: list[Job]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null last.")


class JobTypeInfo(_Document):
    type: str
    title: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of the type's params.")


class JobTypeList(_Document):
    items: list[JobTypeInfo]


class Health(_Document):
    status: Literal["ok"]


class Readiness(_Document):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Literal["ok", "unavailable"]] = Field(
        description="database and redis, and broker when it is a separate server."
    )


__all__ = [
    "STREAM_EVENTS",
    "FieldError",
    "Health",
    "Job",
    "JobErrorInfo",
    "JobEvent",
    "JobEventName",
    "JobPage",
    "JobStatus",
    "JobTypeInfo",
    "JobTypeList",
    "Problem",
    "Readiness",
    "SignOut",
    "SignOutEventName",
    "Tokens",
    "User",
]
