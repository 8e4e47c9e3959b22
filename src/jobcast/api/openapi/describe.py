"""What an endpoint takes and answers, declared next to its view for the OpenAPI document.

``@operation(...)`` records an ``Operation`` on the view function and returns that same
function, so it changes nothing about how a request is handled: parsing, auth, limits and
errors stay where they are. ``jobcast.api.openapi.spec`` finds the records through the app's
URL map.

Only what differs between endpoints is declared; the error answers every endpoint of a kind can
give (401 behind a token, 400/413/415/422 for a JSON body, 422 for a query string, 503 when it
needs the database or Redis, 500 always, and gunicorn's 414 where a URL can grow) are added by
the spec builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])

#: Which credential an operation needs: an access token, a refresh token, an access token or
#: a signed download link, or nothing.
Auth = Literal["access", "refresh", "download", "none"]

#: The body of ``POST /api/v1/jobs``, made per app from the registered job types.
JOB_SUBMISSION = "JobSubmission"

_ATTRIBUTE = "__jobcast_operation__"


@dataclass(frozen=True)
class Reply:
    """One success answer: a JSON document (``model``); Server-Sent Events (``events``: the
    model of the data of each event name); another media type, with a raw ``schema`` or none;
    or no body at all (nothing but the description)."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    schema: Mapping[str, Any] | None = None
    events: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    headers: tuple[str, ...] = ()
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    operation_id: str
    auth: Auth = "access"
    #: The JSON body's model, or ``JOB_SUBMISSION``.
    body: type[BaseModel] | str | None = None
    #: The query string's model; one parameter per field.
    query: type[BaseModel] | None = None
    #: Request headers besides X-Request-ID (which every operation takes), by name.
    headers: tuple[str, ...] = ()
    #: Error statuses this endpoint adds to the derived ones (404, 409).
    errors: tuple[int, ...] = ()
    #: Counted by a Flask-Limiter limit: may answer 429 and sends X-RateLimit-* headers.
    rate_limited: bool = False
    #: Needs the database or Redis, so it answers 503 while they are down.
    backed: bool = True


def operation(**declared: Any) -> Callable[[F], F]:
    """Attach an ``Operation`` (built from ``declared``) to the view; the view is unchanged."""
    described = Operation(**declared)

    def record(view: F) -> F:
        setattr(view, _ATTRIBUTE, described)
        return view

    return record


def operation_of(view: Callable[..., Any]) -> Operation | None:
    found = getattr(view, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


__all__ = ["JOB_SUBMISSION", "Auth", "Operation", "Reply", "operation", "operation_of"]
