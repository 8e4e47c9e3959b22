"""Accounts and tokens over HTTP, and who may open a Socket.IO connection.

Runs against the real web server: register, login, refresh, logout and /me answer as the API
contract says, every failure is problem+json, and a socket opens only with a live access token.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import socketio
from flask import Flask
from flask_jwt_extended import create_access_token

from tests.integration.conftest import Stack
from tests.integration.support import Api, Listener, assert_problem, refusal

PASSWORD = "correct horse battery"
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"

ListenerFactory = Callable[..., Listener]


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def expired_access_token(app: Flask, user_id: int) -> str:
    with app.app_context():
        return create_access_token(identity=str(user_id), expires_delta=timedelta(seconds=-1))


@pytest.fixture
def anonymous(stack: Stack) -> Api:
    return stack.api()


# --- register ---------------------------------------------------------------------------------


def test_register_creates_an_account(anonymous: Api) -> None:
    email = new_email()
    response = anonymous.post(REGISTER, json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "email": email}
    assert isinstance(body["id"], int)


def test_register_accepts_a_password_of_exactly_eight_characters(anonymous: Api) -> None:
    response = anonymous.post(REGISTER, json={"email": new_email(), "password": "12345678"})
    assert response.status_code == 201


def test_register_stores_the_email_in_lower_case(anonymous: Api) -> None:
    email = new_email()
    response = anonymous.post(REGISTER, json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["email"] == email


def test_register_twice_with_one_email_is_a_conflict(anonymous: Api) -> None:
    email = new_email()
    assert anonymous.post(REGISTER, json={"email": email, "password": PASSWORD}).status_code == 201
    again = anonymous.post(REGISTER, json={"email": email, "password": "another password"})
    assert assert_problem(again, 409)["type"].endswith("/conflict")


def test_emails_differing_only_in_case_are_the_same_account(anonymous: Api) -> None:
    email = new_email()
    assert anonymous.post(REGISTER, json={"email": email, "password": PASSWORD}).status_code == 201
    again = anonymous.post(REGISTER, json={"email": email.upper(), "password": PASSWORD})
    assert_problem(again, 409)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({"email": "not-an-email", "password": PASSWORD}, {"email"}, id="bad-email"),
        pytest.param({"email": "a@b", "password": PASSWORD}, {"email"}, id="email-no-domain"),
        pytest.param({"email": "ok@example.com", "password": "1234567"}, {"password"}, id="short"),
        pytest.param({"email": "ok@example.com", "password": ""}, {"password"}, id="empty-pw"),
        pytest.param({"password": PASSWORD}, {"email"}, id="no-email"),
        pytest.param({"email": "ok@example.com"}, {"password"}, id="no-password"),
        pytest.param({"email": 42, "password": PASSWORD}, {"email"}, id="email-not-string"),
        pytest.param(
            {"email": "ok@example.com", "password": 12345678}, {"password"}, id="pw-not-string"
        ),
        pytest.param({}, {"email", "password"}, id="empty-object"),
        pytest.param([], {None}, id="not-an-object"),
    ],
)
def test_register_rejects_invalid_input_naming_the_fields(
    anonymous: Api, body: Any, fields: set[str | None]
) -> None:
    problem = assert_problem(anonymous.post(REGISTER, json=body), 422)
    assert problem["type"].endswith("/validation")
    assert {error["field"] for error in problem["errors"]} == fields
    assert all(error["message"] for error in problem["errors"])


@pytest.mark.parametrize("path", [REGISTER, LOGIN])
@pytest.mark.parametrize("raw", ['{"email": "a@example.com",', "", "null", "{'single': 1}"])
def test_malformed_json_is_a_bad_request(anonymous: Api, path: str, raw: str) -> None:
    response = anonymous.post(path, data=raw, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 400)["type"].endswith("/bad-request")


@pytest.mark.parametrize("path", [REGISTER, LOGIN])
@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/x-www-form-urlencoded", "email=a%40example.com&password=12345678"),
        ("text/plain", '{"email": "a@example.com", "password": "12345678"}'),
    ],
)
def test_a_body_that_is_not_json_is_unsupported(
    anonymous: Api, path: str, content_type: str, raw: str
) -> None:
    response = anonymous.post(path, data=raw, headers={"Content-Type": content_type})
    assert_problem(response, 415)


# --- login ------------------------------------------------------------------------------------


def test_login_returns_an_access_and_a_refresh_token(anonymous: Api) -> None:
    email = new_email()
    anonymous.post(REGISTER, json={"email": email, "password": PASSWORD})
    response = anonymous.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert body["access_token"] != body["refresh_token"]
    me = anonymous.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == email


def test_login_ignores_the_case_of_the_email(anonymous: Api) -> None:
    email = new_email()
    anonymous.post(REGISTER, json={"email": email, "password": PASSWORD})
    response = anonymous.post(LOGIN, json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 200


def test_unknown_email_and_wrong_password_get_the_same_answer(api: Api, anonymous: Api) -> None:
    wrong_password = anonymous.post(LOGIN, json={"email": api.email, "password": "wrong-pass"})
    unknown_email = anonymous.post(LOGIN, json={"email": new_email(), "password": PASSWORD})
    first, second = assert_problem(wrong_password, 401), assert_problem(unknown_email, 401)
    first.pop("request_id", None)
    second.pop("request_id", None)
    assert first == second
    assert wrong_password.headers["Content-Type"] == unknown_email.headers["Content-Type"]


def test_login_with_missing_fields_is_a_validation_error(anonymous: Api) -> None:
    problem = assert_problem(anonymous.post(LOGIN, json={"email": "a@example.com"}), 422)
    assert [error["field"] for error in problem["errors"]] == ["password"]


# --- refresh ----------------------------------------------------------------------------------


def test_refresh_token_buys_a_new_working_pair(api: Api) -> None:
    response = api.post(REFRESH, headers=bearer(api.refresh_token))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["refresh_token"] != api.refresh_token
    me = api.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == api.email
    again = api.post(REFRESH, headers=bearer(body["refresh_token"]))
    assert again.status_code == 200


def test_reusing_a_refresh_token_signs_out_the_whole_session(api: Api) -> None:
    rotated = api.post(REFRESH, headers=bearer(api.refresh_token)).json()
    stolen = assert_problem(api.post(REFRESH, headers=bearer(api.refresh_token)), 401)
    assert "already used" in stolen["detail"]
    # Everything that sign-in produced is dead now, the thief's and the owner's alike.
    assert_problem(api.get(ME, headers=bearer(rotated["access_token"])), 401)
    assert_problem(api.post(REFRESH, headers=bearer(rotated["refresh_token"])), 401)
    assert_problem(api.get(ME), 401)


def test_logout_ends_the_refresh_token_too(api: Api) -> None:
    assert api.post(LOGOUT).status_code == 204
    assert_problem(api.post(REFRESH, headers=bearer(api.refresh_token)), 401)


def test_refresh_with_an_access_token_is_refused(api: Api) -> None:
    assert_problem(api.post(REFRESH, headers=bearer(api.token)), 401)


def test_refresh_without_a_token_is_refused(anonymous: Api) -> None:
    assert_problem(anonymous.post(REFRESH), 401)


def test_a_refresh_token_does_not_authenticate_api_calls(api: Api) -> None:
    assert_problem(api.get(ME, headers=bearer(api.refresh_token)), 401)


# --- logout -----------------------------------------------------------------------------------


def test_logout_revokes_the_access_token(api: Api, stack: Stack) -> None:
    token = api.token
    response = api.post(LOGOUT)
    assert response.status_code == 204 and response.content == b""
    problem = assert_problem(api.get(ME, headers=bearer(token)), 401)
    assert "revoked" in problem["detail"]
    assert response.headers.get("X-Request-ID")
    with pytest.raises(socketio.exceptions.ConnectionError):
        stack.listen(token)


def test_logout_twice_with_one_token_is_refused(api: Api) -> None:
    assert api.post(LOGOUT).status_code == 204
    assert_problem(api.post(LOGOUT), 401)


def test_logout_leaves_the_users_other_sessions_working(api: Api, anonymous: Api) -> None:
    other = anonymous.post(LOGIN, json={"email": api.email, "password": PASSWORD}).json()
    assert api.post(LOGOUT).status_code == 204
    assert api.get(ME, headers=bearer(other["access_token"])).status_code == 200


def test_logout_needs_an_access_token(api: Api, anonymous: Api) -> None:
    assert_problem(anonymous.post(LOGOUT), 401)
    assert_problem(api.post(LOGOUT, headers=bearer(api.refresh_token)), 401)


# --- me ---------------------------------------------------------------------------------------


def test_me_describes_the_signed_in_user(anonymous: Api) -> None:
    email = new_email()
    account = anonymous.post(REGISTER, json={"email": email, "password": PASSWORD}).json()
    token = anonymous.post(LOGIN, json={"email": email, "password": PASSWORD}).json()
    response = anonymous.get(ME, headers=bearer(token["access_token"]))
    assert response.status_code == 200
    assert response.json() == account == {"id": account["id"], "email": email}


def test_me_without_a_token_is_unauthorized(anonymous: Api) -> None:
    response = anonymous.get(ME)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_me_with_an_expired_token_says_it_expired(api: Api, server_app: Flask) -> None:
    user_id = api.get(ME).json()["id"]
    response = api.get(ME, headers=bearer(expired_access_token(server_app, user_id)))
    assert "expired" in assert_problem(response, 401)["detail"]


# --- Socket.IO --------------------------------------------------------------------------------


def test_socket_connects_with_an_access_token_in_the_auth_payload(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(api.token)
    assert listener.client.connected


def test_socket_refuses_a_connection_without_a_token(stack: Stack) -> None:
    assert refusal(stack.base_url, None) == "unauthorized: an access token is required"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "not.a.jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"],
)
def test_socket_refuses_a_garbage_token(stack: Stack, token: str) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        stack.listen(token)


def test_socket_refuses_a_refresh_token(api: Api, stack: Stack) -> None:
    assert refusal(stack.base_url, api.refresh_token) == "unauthorized: an access token is required"


def test_socket_refuses_a_revoked_token(api: Api, stack: Stack) -> None:
    token = api.token
    assert api.post(LOGOUT).status_code == 204
    assert refusal(stack.base_url, token) == "unauthorized: token revoked"


def test_socket_refuses_an_expired_token(api: Api, stack: Stack, server_app: Flask) -> None:
    user_id = api.get(ME).json()["id"]
    expired = expired_access_token(server_app, user_id)
    assert refusal(stack.base_url, expired) == "unauthorized: token expired"


def test_socket_refuses_a_bearer_header_with_a_bad_token(stack: Stack) -> None:
    reason = refusal(stack.base_url, None, headers=bearer("garbage"))
    assert reason == "unauthorized: invalid token"


def test_socket_accepts_a_bearer_header_and_delivers_the_users_events(
    api: Api, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(None, headers=bearer(api.token))
    job = api.submit("demo.steps", {"steps": 1, "step_ms": 0})
    names = [name for name, _ in listener.wait_terminal(job["id"])]
    assert names[0] == "job.queued" and names[-1] == "job.succeeded"


@pytest.mark.parametrize("event", ["join", "join_room", "subscribe", "enter_room"])
def test_socket_clients_cannot_join_another_users_room(
    stack: Stack, listener_factory: ListenerFactory, event: str
) -> None:
    alice, bob = stack.api().signup(), stack.api().signup()
    bob_id = bob.get(ME).json()["id"]
    alice_ears, bob_ears = listener_factory(alice.token), listener_factory(bob.token)
    for payload in (f"user:{bob_id}", {"room": f"user:{bob_id}"}, {"user_id": bob_id}):
        alice_ears.client.emit(event, payload)
    job = bob.submit("demo.steps", {"steps": 2, "step_ms": 20})
    bob_ears.wait_terminal(job["id"])
    # Alice's own job finishing proves her socket still works and events have had time to flow.
    own = alice.submit("demo.steps", {"steps": 1, "step_ms": 0})
    alice_ears.wait_terminal(own["id"])
    assert alice_ears.for_job(job["id"]) == []
    assert {payload["job_id"] for _, payload in alice_ears.events} == {own["id"]}
