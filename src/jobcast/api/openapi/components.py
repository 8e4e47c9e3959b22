"""The reusable parts of the OpenAPI document: error answers, headers, parameters, security.

Each error status has one response component whose body is the problem document, with the
problem ``type`` slugs that status can carry; operations refer to them by ``$ref``.
"""

from __future__ import annotations

from typing import Any

#: Every problem ``type`` slug jobcast sends (after ``jobcast.errors.PROBLEM_BASE``).
PROBLEM_SLUGS = (
    "bad-request",
    "unauthorized",
    "bad-credentials",
    "not-found",
    "method-not-allowed",
    "conflict",
    "payload-too-large",
    "unsupported-media-type",
    "validation",
    "rate-limited",
    "llm-quota",
    "internal",
    "unavailable",
)

TAGS = [
    {"name": "auth", "description": "Accounts, sign-in and tokens."},
    {"name": "jobs", "description": "Submit, follow, cancel and download jobs."},
    {"name": "health", "description": "Probes for load balancers and orchestrators."},
    {
        "name": "admin",
        "description": (
            "Every user's jobs and the audit log, for admins only: anyone else gets 404 on"
            " every admin path, as for a path that does not exist."
        ),
    },
    {"name": "docs", "description": "This document."},
]

SECURITY_SCHEMES = {
    "accessToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The `access_token` from login or refresh; short-lived.",
    },
    "refreshToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "The `refresh_token` from login or refresh. It works once: a second use signs out"
            " every session of that sign-in."
        ),
    },
    "downloadLink": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": (
            "The signed token of a job's `result.download_url`: names the job and its owner and"
            " expires after JOBCAST_DOWNLOAD_URL_MINUTES."
        ),
    },
}

SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "access": [{"accessToken": []}],
    "refresh": [{"refreshToken": []}],
    "download": [{"accessToken": []}, {"downloadLink": []}],
    "none": [],
}

PARAMETERS = {
    "X-Request-ID": {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": (
            "Kept when it matches ^[A-Za-z0-9._:-]{1,128}$, otherwise replaced by a new id;"
            " tags the logs, the job and error bodies."
        ),
        "schema": {"type": "string"},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "The same key with the same request within 24 hours returns the original job"
            " (200, Idempotent-Replayed: true) instead of a new one."
        ),
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    },
    "Last-Event-ID": {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": (
            "The id (<epoch>-<seq>) of the last event the client received: the stream resumes"
            " after it. A bare <seq> means the job's current epoch; absent or malformed means"
            " from the start."
        ),
        "schema": {"type": "string"},
    },
    "job_id": {
        "name": "job_id",
        "in": "path",
        "required": True,
        "description": "The job's id; any other string is a 404.",
        "schema": {"type": "string", "format": "uuid"},
    },
}


def _header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_SECONDS = {"type": "integer", "minimum": 0}

HEADERS = {
    "X-Request-ID": _header(
        "The request's id (the caller's own when it was sane).", {"type": "string"}, required=True
    ),
    "Retry-After": _header("Seconds to wait before trying again.", _SECONDS, required=True),
    "WWW-Authenticate": _header("`Bearer`, on token problems.", {"type": "string"}),
    "Location": _header("The job's URL.", {"type": "string"}, required=True),
    "Idempotent-Replayed": _header(
        "`true`: the answer is the job an earlier request with this key created.",
        {"type": "string", "enum": ["true"]},
        required=True,
    ),
    "Content-Disposition": _header(
        "`attachment` with the result's file name.", {"type": "string"}, required=True
    ),
    "X-RateLimit-Limit": _header("Requests allowed in the current window.", _SECONDS),
    "X-RateLimit-Remaining": _header("Requests left in the current window.", _SECONDS),
    "X-RateLimit-Reset": _header("When the window resets (Unix seconds).", _SECONDS),
}

RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# status: (component name, description, headers)
_ERRORS: dict[int, tuple[str, str, tuple[str, ...]]] = {
    400: ("BadRequest", "The body is not valid JSON (`bad-request`).", ()),
    401: (
        "Unauthorized",
        "A token is missing, malformed, expired, revoked or of the wrong kind, or its user is"
        " gone (`unauthorized`, with `WWW-Authenticate: Bearer`); a refresh token used twice,"
        " or a download link that is invalid or expired (`unauthorized`); a wrong email or"
        " password at login (`bad-credentials`).",
        ("WWW-Authenticate",),
    ),
    404: (
        "NotFound",
        "No such job, or not the caller's, or an id that is not a UUID: the answer does not"
        " say which; or the job has no result file; or, on an admin path, the caller is not an"
        " admin (`not-found`).",
        (),
    ),
    409: (
        "Conflict",
        "The email is already registered, or the job is already finished (`conflict`).",
        (),
    ),
    413: (
        "PayloadTooLarge",
        "The body is larger than JOBCAST_MAX_BODY_BYTES (`payload-too-large`).",
        (),
    ),
    415: (
        "UnsupportedMediaType",
        "The body is not sent as application/json (`unsupported-media-type`).",
        (),
    ),
    422: (
        "ValidationFailed",
        "The body, params, query string, cursor or Idempotency-Key is invalid (`validation`);"
        " `errors` names each field.",
        (),
    ),
    429: (
        "TooManyRequests",
        "A rate limit was reached, or (submissions) the caller has too many unfinished jobs"
        " (`rate-limited`); or (LLM jobs) the run would pass the caller's tokens a day, budget"
        " a month or LLM jobs at once (`llm-quota`, with `limit`, `used` and `remaining`).",
        ("Retry-After",),
    ),
    500: (
        "InternalError",
        "An unexpected error (`internal`); the detail says only to quote the request id.",
        (),
    ),
    503: (
        "ServiceUnavailable",
        "The database, Redis or the broker is unreachable (`unavailable`); retry later.",
        ("Retry-After",),
    ),
}

ERROR_STATUSES = frozenset(_ERRORS)

#: Not from the app: gunicorn answers a request line over its limit_request_line (4094 bytes)
#: itself, in HTML, before jobcast sees the request. Documented where a URL can grow.
URI_TOO_LONG = {
    "description": (
        "The request line (path and query string) is longer than the HTTP server accepts"
        " (4094 bytes). Answered by the server before the app, as text/html, not as a problem"
        " document."
    ),
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def error_ref(status: int) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}


def error_responses(problem_schema: dict[str, Any]) -> dict[str, Any]:
    """One response component per error status, each a problem document."""
    return {
        name: {
            "description": description,
            "headers": {
                header: {"$ref": f"#/components/headers/{header}"}
                for header in ("X-Request-ID", *headers)
            },
            "content": {"application/problem+json": {"schema": problem_schema}},
        }
        for name, description, headers in _ERRORS.values()
    } | {"UriTooLong": URI_TOO_LONG}
