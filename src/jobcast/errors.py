"""The jobcast error hierarchy; no Flask here (``jobcast.api.http`` renders them as problem+json).

``JobcastError`` is the root. ``ApiError`` and its subclasses carry an HTTP status and a stable
``type`` URI (RFC 9457); views and services raise them and ``http.problem_response`` renders
them.
``ConfigError`` stops start-up. ``JobError`` is what a job function raises to fail with a message
the user may read; ``TransientJobError`` asks for a retry with backoff; ``ParamsRefused`` is what a
job type's submit-time check raises (a 422 at submit, a failed job at run time).
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://jobcast.dev/problems/"


class JobcastError(Exception):
    """Base of every error jobcast raises on purpose."""


class ConfigError(JobcastError):
    """A setting is missing or invalid; the message names the variable and the value."""


class JobError(JobcastError):
    """Raised by a job function: the job fails with this message, shown to its owner."""

    code = "job_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class TransientJobError(JobError):
    """A failure worth retrying (a dropped connection, a busy server): retried with backoff."""

    code = "transient"


class ParamsRefused(JobError):
    """Valid params this server will not run for this owner (a recipient it does not mail).

    Raised by a job type's ``check`` at submit, it is a 422 like a params validation error,
    naming ``field`` (a dotted path inside the params; None for the params as a whole) with
    ``code`` as the error's type. The job function may call the same check again before it acts,
    since settings can change between submit and run: there it fails the job with ``code``.
    """

    def __init__(self, message: str, *, field: str | None = None, code: str = "refused") -> None:
        super().__init__(message, code=code)
        self.field = field


class JobCancelled(JobcastError):
    """Raised inside a job at a checkpoint once its owner has asked to cancel it.

    A job that keeps what it made so far (an LLM job's partial text) raises it again with
    ``result``: the cancelled job then carries that result.
    """

    def __init__(self, job_id: str, *, result: dict[str, Any] | None = None) -> None:
        super().__init__(job_id)
        self.result = result


class ApiError(JobcastError):
    """An error answered over HTTP as problem+json."""

    status = 500
    slug = "internal"
    title = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        members: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        # RFC 9457 extension members: what a client needs beyond the detail (a quota's figures).
        self.members = members or {}


class BadRequest(ApiError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ApiError):
    status, slug, title = 401, "unauthorized", "Authentication required"


class NotFound(ApiError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ApiError):
    status, slug, title = 409, "conflict", "Conflict"


class UnsupportedMediaType(ApiError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(ApiError):
    status, slug, title = 422, "validation", "Request validation failed"


class TooManyRequests(ApiError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 10) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class QuotaExceeded(ApiError):
    """A per-user allowance (LLM tokens per day, budget per month, jobs at once) is used up."""

    status, slug, title = 429, "llm-quota", "Quota exceeded"

    def __init__(
        self, detail: str, *, limit: float, used: float, remaining: float, retry_after: int
    ) -> None:
        super().__init__(
            detail,
            headers={"Retry-After": str(retry_after)},
            members={"limit": limit, "used": used, "remaining": remaining},
        )


class ServiceUnavailable(ApiError):
    status, slug, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def pydantic_errors(exc: Any) -> list[dict[str, Any]]:
    """Turn a pydantic ValidationError into the ``errors`` member: field path, message, type."""
    return [
        {
            "field": ".".join(str(part) for part in err["loc"]) or None,
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
