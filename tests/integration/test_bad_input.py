"""Hostile input is refused with a 4xx problem document, never a 500, by the real web server.

Each case here was a 500 once (an attack run's findings): a body nested deeper than the JSON
parser recurses, an email no database or hasher takes, a list cursor whose time falls off the
calendar once moved to UTC, and a token signed with the server's own secret whose ``sub`` names
no user id. ``tests/unit/test_bad_input.py`` generates the same kinds of input for every
endpoint in process; these requests go through gunicorn, Redis and the database as a client's do.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import quote

import jwt as pyjwt
import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse as Response

from jobcast.service.admin.audit import Actor
from jobcast.service.auth.models import User
from jobcast.service.auth.tokens import issue_tokens, user_id_of
from jobcast.service.auth.users import set_admin
from jobcast.service.extensions import db
from tests.fuzz.strategies import DEEP_JSON, ODD_TEXT, as_json, odd_json
from tests.integration.conftest import Stack
from tests.integration.support import Api, assert_problem

PASSWORD = "correct horse battery"
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
JOBS = "/api/v1/jobs"
DEEP = 50_000


def deeply_nested(depth: int = DEEP, *, inside: str = "1") -> str:
    return "[" * depth + inside + "]" * depth


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


# --- bodies -----------------------------------------------------------------------------------

DEEP_BODIES = [
    pytest.param(deeply_nested(), id="array"),
    pytest.param('{"a":' * DEEP + "1" + "}" * DEEP, id="object"),
    pytest.param('{"email": ' + deeply_nested() + "}", id="inside-a-member"),
]


@pytest.mark.parametrize("raw", DEEP_BODIES)
@pytest.mark.parametrize("path", [REGISTER, LOGIN])
def test_a_body_nested_too_deeply_is_a_bad_request_without_a_token(
    stack: Stack, path: str, raw: str
) -> None:
    response = stack.api().post(path, data=raw, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 400)["type"].endswith("/bad-request")


@pytest.mark.parametrize("raw", DEEP_BODIES)
def test_a_submit_nested_too_deeply_is_a_bad_request(api: Api, raw: str) -> None:
    response = api.post(JOBS, data=raw, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 400)["type"].endswith("/bad-request")


def test_params_nested_deeply_but_parsable_are_refused_as_invalid(api: Api) -> None:
    raw = '{"type": "demo.steps", "params": {"steps": ' + deeply_nested(900) + "}}"
    response = api.post(JOBS, data=raw, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 422)["errors"]


# --- emails and passwords ---------------------------------------------------------------------

ODD_EMAILS = [
    pytest.param("nul\x00@example.com", id="nul-in-local-part"),
    pytest.param("user@exa\x00mple.com", id="nul-in-domain"),
    pytest.param("\ud800@example.com", id="lone-high-surrogate"),
    pytest.param("user@example.com\udfff", id="lone-low-surrogate"),
    pytest.param("us\x1fer@example.com", id="control-character"),
    pytest.param("user\x7f@example.com", id="delete"),
    pytest.param("user\u2028@example.com", id="line-separator"),
]


@pytest.mark.parametrize("email", ODD_EMAILS)
def test_a_sign_up_email_with_control_characters_or_lone_surrogates_is_422_naming_it(
    stack: Stack, email: str
) -> None:
    response = stack.api().post(REGISTER, json={"email": email, "password": PASSWORD})
    problem = assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == ["email"]


@pytest.mark.parametrize("email", ODD_EMAILS)
def test_a_login_email_no_account_can_hold_is_an_unknown_address(stack: Stack, email: str) -> None:
    """The login schema takes any string: a control character is the 401 of a wrong address;
    a lone surrogate is no string the body may hold (422 naming the field)."""
    response = stack.api().post(LOGIN, json={"email": email, "password": PASSWORD})
    if any("\ud800" <= c <= "\udfff" for c in email):
        problem = assert_problem(response, 422)
        assert [error["field"] for error in problem["errors"]] == ["email"]
    else:
        assert_problem(response, 401)


@pytest.mark.parametrize("path", [REGISTER, LOGIN])
def test_a_password_with_a_lone_surrogate_is_422_naming_it(stack: Stack, path: str) -> None:
    body = {"email": new_email(), "password": "correct horse \ud800 battery"}
    problem = assert_problem(stack.api().post(path, json=body), 422)
    assert [error["field"] for error in problem["errors"]] == ["password"]


def test_a_password_may_hold_any_character_that_encodes(stack: Stack) -> None:
    email, password = new_email(), "nul \x00 tab \t emoji \U0001f600 rtl \u202e"
    anonymous = stack.api()
    body = {"email": email, "password": password}
    assert anonymous.post(REGISTER, json=body).status_code == 201
    assert anonymous.post(LOGIN, json=body).status_code == 200


# --- cursors ----------------------------------------------------------------------------------


def cursor(created: str, job_id: str | None = None) -> str:
    raw = f"{created}|{job_id or uuid.uuid4()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


OFF_THE_CALENDAR = [
    pytest.param("9999-12-31T23:59:59.999999-23:59", id="year-9999-west"),
    pytest.param("9999-12-31T23:00:00-01:00", id="year-9999-an-hour-west"),
    pytest.param("0001-01-01T00:00:00+23:59", id="year-1-east"),
    pytest.param("0001-01-01T00:59:59+01:00", id="year-1-an-hour-east"),
]


@pytest.mark.parametrize("created", OFF_THE_CALENDAR)
def test_a_cursor_whose_time_leaves_the_calendar_in_utc_is_422(api: Api, created: str) -> None:
    problem = assert_problem(api.get(f"{JOBS}?cursor={cursor(created)}"), 422)
    assert [error["field"] for error in problem["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    "created",
    ["9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00+00:00", "9999-12-31T00:00:00+14:00"],
)
def test_a_cursor_at_the_ends_of_the_calendar_is_a_page(api: Api, created: str) -> None:
    response = api.get(f"{JOBS}?cursor={cursor(created)}")
    assert response.status_code == 200, response.text


# --- tokens -----------------------------------------------------------------------------------

ODD_SUBJECTS: list[Any] = [
    pytest.param("abc", id="word"),
    pytest.param("", id="empty"),
    pytest.param("1.5", id="decimal-string"),
    pytest.param("-1", id="negative"),
    pytest.param("0", id="zero"),
    pytest.param(" 1", id="padded"),
    pytest.param("1_0", id="underscored"),
    pytest.param("\u0661", id="arabic-digit"),
    pytest.param("9" * 40, id="beyond-64-bits"),
    pytest.param(str(2**63), id="just-beyond-64-bits"),
    pytest.param(str(2**31), id="just-beyond-32-bits"),
    pytest.param("nul\x00", id="nul"),
    pytest.param(1.5, id="float"),
    pytest.param(2**70, id="huge-number"),
    pytest.param(7, id="number"),
    pytest.param(["1"], id="list"),
    pytest.param({"id": 1}, id="object"),
    pytest.param(None, id="null"),
]
#: Every endpoint that loads the caller from an access token, and the refresh that loads it from
#: a refresh token.
TOKEN_ENDPOINTS = [
    pytest.param("POST", JOBS, "access", id="submit"),
    pytest.param("GET", JOBS, "access", id="list"),
    pytest.param("GET", f"{JOBS}/{uuid.uuid4()}", "access", id="get"),
    pytest.param("POST", f"{JOBS}/{uuid.uuid4()}/cancel", "access", id="cancel"),
    pytest.param("GET", f"{JOBS}/{uuid.uuid4()}/events", "access", id="events"),
    pytest.param("GET", f"{JOBS}/{uuid.uuid4()}/result", "access", id="result"),
    pytest.param("GET", "/api/v1/job-types", "access", id="job-types"),
    pytest.param("GET", "/api/v1/me", "access", id="me"),
    pytest.param("POST", "/api/v1/auth/logout", "access", id="logout"),
    pytest.param("POST", "/api/v1/auth/refresh", "refresh", id="refresh"),
]


def signed(app: Flask, sub: Any, kind: str = "access") -> str:
    """A token the server's own secret signs, with any ``sub`` at all."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "type": kind,
        "fresh": False,
        "jti": str(uuid.uuid4()),
        "fam": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    return pyjwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")


@pytest.mark.parametrize("sub", ODD_SUBJECTS)
@pytest.mark.parametrize(("method", "path", "kind"), TOKEN_ENDPOINTS)
def test_a_signed_token_whose_subject_is_not_a_user_id_is_401(
    stack: Stack, server_app: Flask, method: str, path: str, kind: str, sub: Any
) -> None:
    token = signed(server_app, sub, kind)
    response = stack.api().request(
        method,
        path,
        json={"type": "demo.steps", "params": {}} if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert assert_problem(response, 401)["type"].endswith("/unauthorized")


# --- every operation, generated input ---------------------------------------------------------
#
# The app in process (the servers' settings, rate limits on as in production) through Flask's
# test client: every operation of the OpenAPI document, with generated bodies nested to any
# depth, odd text in every body member, query parameter and path parameter, and signed tokens
# with any subject. Whatever arrives, the answer is below 500 and, when refused, problem+json.

PROPERTIES = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def operations(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _members(operation: dict[str, Any]) -> list[str]:
    """The body's member names, wherever the document lists them."""
    text = json.dumps(operation.get("requestBody", {}))
    names = set(re.findall(r'"properties": \{"(\w+)"', text))
    return sorted(names | {"email", "password", "type", "params"})


@pytest.fixture(scope="module")
def inproc(server_app: Flask) -> Flask:
    assert server_app.config["RATELIMIT_ENABLED"], "the limits' keys read input too"
    return server_app


@pytest.fixture(scope="module")
def caller(stack: Stack) -> int:
    user = stack.api().signup()
    user_id: int = user.get("/api/v1/me").json()["id"]
    return user_id


def fresh_tokens(app: Flask, user_id: int) -> dict[str, str]:
    """A sign-in of its own per request, so that logout or a refresh revokes nothing else."""
    with app.app_context():
        tokens: dict[str, str] = issue_tokens(user_id)
    return tokens


def call(
    app: Flask, method: str, path: str, *, token: str | None, ip: str, **kwargs: Any
) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().open(
        path,
        method=method,
        headers=headers,
        environ_base={"REMOTE_ADDR": ip},
        buffered=True,
        **kwargs,
    )


def assert_refused_properly(response: Response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json", response.mimetype
        assert response.get_json()["status"] == response.status_code


def concrete(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", quote(value, safe=""), path)


IPS = st.ip_addresses(v=4).map(str)
PATH_TEXT = st.one_of(
    st.uuids().map(str),
    ODD_TEXT.map(lambda s: s.encode("utf-8", "surrogatepass").decode("latin-1")),
)
BAD_QUERY = st.one_of(
    st.sampled_from(["%00", "%ED%A0%80", "%FF%FE", "%C0%80", "%E2%80%A8", "a" * 5000]),
    ODD_TEXT.map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
)


OPERATION_IDS = [
    "register",
    "login",
    "refresh",
    "logout",
    "getMe",
    "getMyUsage",
    "listJobTypes",
    "submitJob",
    "listJobs",
    "getJob",
    "cancelJob",
    "streamJobEvents",
    "downloadJobResult",
    "healthz",
    "readyz",
    "getOpenApi",
    "adminListJobs",
    "adminGetJob",
    "adminGetJobEvents",
    "adminCancelJob",
    "adminRerunJob",
    "adminListAudit",
]
ADMIN_FILTERS = (
    "type",
    "status",
    "owner",
    "owner_email",
    "created_after",
    "created_before",
    "limit",
    "cursor",
    "action",
    "actor",
    "target_type",
    "target_id",
)


@pytest.fixture(scope="module")
def by_id(inproc: Flask) -> dict[str, tuple[str, str, dict[str, Any]]]:
    found = {op.get("operationId", f"{m} {p}"): (m, p, op) for m, p, op in operations(inproc)}
    return found


def test_every_operation_of_the_document_is_exercised(
    by_id: dict[str, tuple[str, str, dict[str, Any]]],
) -> None:
    missing = set(by_id) - set(OPERATION_IDS)
    assert not missing, f"add these operations to OPERATION_IDS: {sorted(missing)}"


def _run(
    by_id: dict[str, tuple[str, str, dict[str, Any]]], operation_id: str
) -> tuple[str, str, dict[str, Any]]:
    if operation_id not in by_id:
        pytest.skip(f"{operation_id} is not in this app's document")
    return by_id[operation_id]


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
@PROPERTIES
@given(data=st.data())
def test_any_body_is_answered_below_500(
    inproc: Flask,
    caller: int,
    by_id: dict[str, tuple[str, str, dict[str, Any]]],
    operation_id: str,
    data: st.DataObject,
) -> None:
    method, path, operation = _run(by_id, operation_id)
    members = _members(operation)
    body = data.draw(
        st.one_of(
            DEEP_JSON,
            st.fixed_dictionaries(dict.fromkeys(members, ODD_TEXT)).map(as_json),
            st.fixed_dictionaries({}, optional=dict.fromkeys(members, odd_json())).map(as_json),
            odd_json().map(as_json),
        ),
        label="body",
    )
    tokens = fresh_tokens(inproc, caller)
    token = tokens["refresh_token" if operation_id == "refresh" else "access_token"]
    response = call(
        inproc,
        method,
        concrete(path, data.draw(PATH_TEXT, label="path")),
        token=token,
        ip=data.draw(IPS, label="ip"),
        data=body,
        content_type="application/json",
        query_string=data.draw(BAD_QUERY.map(lambda q: f"cursor={q}&status={q}"), label="query"),
    )
    assert_refused_properly(response)


@pytest.fixture(scope="module")
def admin_caller(stack: Stack, inproc: Flask) -> int:
    user = stack.api().signup()
    me = user.get("/api/v1/me").json()
    with inproc.app_context():
        set_admin(me["email"], True, Actor.command_line())
    user_id: int = me["id"]
    return user_id


@pytest.mark.parametrize("operation_id", [o for o in OPERATION_IDS if o.startswith("admin")])
@PROPERTIES
@given(data=st.data())
def test_an_admins_odd_filters_and_paths_are_answered_below_500(
    inproc: Flask,
    admin_caller: int,
    by_id: dict[str, tuple[str, str, dict[str, Any]]],
    operation_id: str,
    data: st.DataObject,
) -> None:
    """The admin API's filters (times, owners, cursors) take any text an admin sends."""
    method, path, _ = _run(by_id, operation_id)
    query = data.draw(
        st.lists(st.tuples(st.sampled_from(ADMIN_FILTERS), BAD_QUERY), max_size=4), label="query"
    )
    response = call(
        inproc,
        method,
        concrete(path, data.draw(PATH_TEXT, label="path")),
        token=fresh_tokens(inproc, admin_caller)["access_token"],
        ip=data.draw(IPS, label="ip"),
        query_string="&".join(f"{name}={value}" for name, value in query),
    )
    assert_refused_properly(response)


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
@PROPERTIES
@given(data=st.data())
def test_a_signed_token_with_any_subject_is_answered_below_500(
    inproc: Flask,
    by_id: dict[str, tuple[str, str, dict[str, Any]]],
    operation_id: str,
    data: st.DataObject,
) -> None:
    method, path, _ = _run(by_id, operation_id)
    sub = data.draw(
        st.one_of(
            ODD_TEXT,
            st.integers().map(str),
            st.integers(),
            st.floats(),
            st.lists(st.integers(), max_size=2),
        ),
        label="sub",
    )
    kind = "refresh" if operation_id == "refresh" else "access"
    response = call(
        inproc,
        method,
        concrete(path, str(uuid.uuid4())),
        token=signed(inproc, sub, kind),
        ip=data.draw(IPS, label="ip"),
        json={"type": "demo.steps", "params": {}} if method == "POST" else None,
    )
    assert_refused_properly(response)
    if operation_id in ("healthz", "readyz", "getOpenApi", "register", "login"):
        return
    if not names_an_account(inproc, sub):  # a small number can be an account this module made
        assert response.status_code in (401, 404, 429), response.get_data(as_text=True)


def names_an_account(app: Flask, sub: Any) -> bool:
    user_id = user_id_of({"sub": sub})
    with app.app_context():
        return user_id is not None and db.session.get(User, user_id) is not None


@PROPERTIES
@given(when=st.datetimes(), offset=st.integers(min_value=-1439, max_value=1439), ip=IPS)
def test_a_list_cursor_at_any_time_and_offset_is_answered_below_500(
    inproc: Flask, caller: int, when: Any, offset: int, ip: str
) -> None:
    sign = "+" if offset >= 0 else "-"
    created = when.isoformat() + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    token = fresh_tokens(inproc, caller)["access_token"]
    response = call(inproc, "GET", f"{JOBS}?cursor={cursor(created)}", token=token, ip=ip)
    assert_refused_properly(response)
    assert response.status_code in (200, 422, 429)


def test_a_login_email_with_a_lone_surrogate_is_422_with_rate_limits_on(inproc: Flask) -> None:
    response = call(
        inproc,
        "POST",
        LOGIN,
        token=None,
        ip="192.0.2.1",
        data='{"email": "\\ud800@example.com", "password": "x"}',
        content_type="application/json",
    )
    assert response.status_code == 422, response.get_data(as_text=True)
