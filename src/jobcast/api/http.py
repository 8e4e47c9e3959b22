"""HTTP plumbing shared by every blueprint: request ids, JSON bodies, error rendering, and
the requests' metrics (by route rule and status, where the app counts)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Request, Response, current_app, g, json, request
from flask.sessions import SessionInterface, SessionMixin
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError as DatabaseError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from jobcast.errors import (
    PROBLEM_BASE,
    ApiError,
    BadRequest,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from jobcast.errors import pydantic_errors as field_errors
from jobcast.logs import request_id_var
from jobcast.telemetry.metrics import observe_request

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Stable slugs for the HTTP errors werkzeug raises before a view runs.
_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    500: "internal",
}


class NoCookieSessions(SessionInterface):
    """jobcast keeps no Flask session (tokens travel in headers); Flask's default would still
    build a signing serializer and look for a cookie on every request."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None  # Flask then hands out a NullSession, which refuses writes

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


class ApiRequest(Request):
    """Flask's request, except that a JSON body nested deeper than the parser can recurse is
    refused like any other unparsable one (None when ``silent``, else a 400) instead of escaping
    as a RecursionError, a 500. Every reader of the body gets this: ``json_body`` and the login
    limit's key alike."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            return self.on_json_loading_failed(ValueError("the JSON document is nested too deeply"))


def register_http(app: Flask) -> None:
    app.request_class = ApiRequest
    app.session_interface = NoCookieSessions()
    app.before_request(_start_clock)
    app.before_request(_assign_request_id)
    app.after_request(_count_request)
    app.after_request(_return_request_id)
    app.after_request(_security_headers)
    # The service's own routes share jobcast's prefix, and so its catch-all.
    app.after_request(_honest_allow)
    app.teardown_request(_forget_request_id)
    app.register_error_handler(ApiError, api_error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RedisError, _dependency_down)
    app.register_error_handler(DatabaseError, _dependency_down)
    app.register_error_handler(Exception, _unexpected_error)


def guard_blueprint(bp: Blueprint, max_body_bytes: Callable[[], int]) -> None:
    """jobcast's rules on jobcast's routes, whatever the app around them does: request ids,
    the body limit (413), problem+json for every error (unknown paths and methods under the
    prefix too, through a catch-all route) and the security headers. A host's own routes get
    none of them."""
    bp.before_request(_start_clock)
    bp.before_request(_assign_request_id)
    bp.before_request(lambda: _limit_body(max_body_bytes()))
    bp.after_request(_count_request)
    bp.after_request(_return_request_id)
    bp.after_request(_security_headers)
    bp.teardown_request(_forget_request_id)
    bp.register_error_handler(ApiError, api_error_response)
    bp.register_error_handler(HTTPException, _http_error)
    # By code too: Flask asks an app's handler for a code before a blueprint's for a class.
    for code in _HTTP_SLUGS:
        bp.register_error_handler(code, _http_error)
    bp.register_error_handler(RedisError, _dependency_down)
    bp.register_error_handler(DatabaseError, _dependency_down)
    bp.register_error_handler(Exception, _unexpected_error)
    bp.after_request(_honest_allow)
    bp.add_url_rule("/<path:unknown>", "unknown", _unknown, methods=_METHODS)


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: The endpoint of ``guard_blueprint``'s catch-all (jobcast's blueprint is named "jobcast").
CATCH_ALL = "jobcast.unknown"


def _limit_body(most: int) -> None:
    request.max_content_length = most


def _unknown(unknown: str) -> Response:
    """A path under the prefix that names nothing: 404, or 405 where another method would do."""
    allowed = _served_methods(request.path)
    if allowed:
        raise MethodNotAllowed(valid_methods=allowed)
    raise NotFound()


def _served_methods(path: str) -> list[str]:
    """The methods a route other than the catch-all answers at ``path``."""
    adapter = current_app.create_url_adapter(request)
    allowed = []
    for method in _METHODS:
        try:
            endpoint, _ = adapter.match(path, method=method)  # type: ignore[union-attr]
        except HTTPException:
            continue
        if endpoint != CATCH_ALL:
            allowed.append(method)
    return allowed


def _honest_allow(response: Response) -> Response:
    """Flask's automatic OPTIONS answer lists every method some rule takes at the path, the
    catch-all's too: list only those of the routes that serve it."""
    automatic = request.method == "OPTIONS" and "Allow" in response.headers
    if automatic and request.endpoint != CATCH_ALL:
        response.headers["Allow"] = ", ".join(_served_methods(request.path))
    return response


def _start_clock() -> None:
    """When the request began, where the app counts requests (once: the app's hook and the
    blueprint's both run on the service's jobcast routes)."""
    if "jobcast_began" not in g and _counted():
        g.jobcast_began = time.perf_counter()


def _count_request(response: Response) -> Response:
    began = g.pop("jobcast_began", None)
    if began is not None:
        rule = request.url_rule
        route = rule.rule if rule is not None else "(unmatched)"
        observe_request(request.method, route, response.status_code, time.perf_counter() - began)
    return response


def _counted() -> bool:
    runtime = current_app.extensions.get("jobcast")
    return runtime is not None and runtime.settings.metrics


def _assign_request_id() -> None:
    """Accept the caller's X-Request-ID when it is sane, else make one."""
    if "request_id" in g:
        return  # the app's own hook (the service's) already did
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    g.request_id_token = request_id_var.set(g.request_id)


def _return_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-ID"] = g.request_id
    return response


# Pages may load scripts, styles and images from this origin only, open sockets back to it,
# and be framed by nobody; API answers may load nothing at all.
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _security_headers(response: Response) -> Response:
    # An app whose own hooks are these (the service's) runs them after the blueprint's: once.
    if g.get("jobcast_headers_set"):
        return response
    g.jobcast_headers_set = True
    html = response.mimetype == "text/html"
    response.headers.setdefault("Content-Security-Policy", _PAGE_CSP if html else _API_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _forget_request_id(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description or error.name
    if status == 413:
        detail = f"the request body is larger than {request.max_content_length} bytes"
        _drain_body()
    elif status == 429:
        detail = f"rate limit exceeded ({detail}); retry after the Retry-After delay"
    response = problem_response(
        status, _HTTP_SLUGS.get(status, f"http-{status}"), error.name, detail
    )
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


def _drain_body(limit: int = 16 * 1024 * 1024) -> None:
    """Read and drop an oversized body (up to ``limit``) so the connection can be reused;
    the server closes it when more is left."""
    stream = request.environ.get("wsgi.input")
    remaining = min(request.content_length or 0, limit)
    while stream is not None and remaining > 0:
        chunk = stream.read(min(65536, remaining))
        if not chunk:
            break
        remaining -= len(chunk)


def _dependency_down(error: Exception) -> Response:
    # Redis (tokens, events, queue) or the database is unreachable: a retryable 503.
    log.error(
        "dependency unavailable on %s %s: %s", request.method, request.path, type(error).__name__
    )
    return api_error_response(ServiceUnavailable("a backing service is unavailable; retry shortly"))


def _unexpected_error(error: Exception) -> Response:
    # Log the trace with the request id; the client gets the id and nothing of the internals.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(
        500,
        "internal",
        "Internal server error",
        "an unexpected error occurred; quote the request id",
    )


def json_body() -> Any:
    """The request's JSON document; 415 for another media type, 400 when it does not parse
    (nested too deeply included: see ``ApiRequest``)."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # a host's request class, without ``ApiRequest``'s guard
        data = None
    if data is None:
        raise BadRequest("the request body is not valid JSON, or is nested too deeply")
    return data


def parse_body(model: type[M]) -> M:
    """The JSON body validated by ``model``; 422 with field errors when it does not fit."""
    try:
        return model.model_validate(json_body())
    except ValidationError as exc:
        raise ValidationFailed("the request body is invalid", errors=field_errors(exc)) from None


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    members: dict[str, Any] | None = None,
) -> Response:
    """Render one RFC 9457 problem document; every HTTP error jobcast sends goes through here."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **(members or {}),
    }
    if errors is not None:
        body["errors"] = errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    response.headers.update(headers or {})
    return response


def api_error_response(error: ApiError) -> Response:
    return problem_response(
        error.status,
        error.slug,
        error.title,
        error.detail,
        errors=error.errors,
        headers=error.headers,
        members=error.members,
    )
