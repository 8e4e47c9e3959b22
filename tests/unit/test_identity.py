"""Who owns a job: the identity adapters against real Flask, Flask-Login and Flask-JWT-Extended
apps (no servers), and the one owner conversion."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token
from flask_login import LoginManager, UserMixin, login_user

from jobcast.errors import ConfigError, Unauthorized
from jobcast.identity import (
    BaseIdentity,
    CallableIdentity,
    FlaskLoginIdentity,
    Grant,
    JWTIdentity,
    owner_str,
)

# --- owner_str ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "owner"), [(42, "42"), ("7", "7"), ("alice@example.com", "alice@example.com")]
)
def test_owner_str_turns_ids_into_the_strings_owners_are_compared_as(
    value: object, owner: str
) -> None:
    assert owner_str(value) == owner


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "not None"),
        ("", "empty"),
        (True, "not True"),
        (False, "not False"),
        ("x" * 256, "at most 255 characters, not 256"),
    ],
)
def test_owner_str_refuses_values_that_name_no_one(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        owner_str(value)


def test_owner_str_takes_the_longest_owner_the_column_holds() -> None:
    assert owner_str("x" * 255) == "x" * 255


# --- BaseIdentity and CallableIdentity ------------------------------------------------------


def test_the_base_class_grants_connections_to_the_request_owner_forever() -> None:
    class Fixed(BaseIdentity):
        def __init__(self, owner: str | None) -> None:
            self.owner = owner

        def request_owner(self) -> str | None:
            return self.owner

    assert Fixed("ann").connection_grant({"anything": 1}) == Grant("ann")
    assert Fixed(None).connection_grant(None) is None
    assert Fixed("ann").revoked([Grant("ann", token_id="t1")]) == set()


def test_callable_identity_converts_int_owners_and_reuses_http_for_sockets() -> None:
    identity = CallableIdentity(lambda: 42)
    assert identity.request_owner() == "42"
    assert identity.connection_grant({"token": "ignored"}) == Grant("42")
    assert CallableIdentity(lambda: None).request_owner() is None


def test_callable_identity_asks_its_socket_function_with_the_auth_payload() -> None:
    identity = CallableIdentity(lambda: None, socket=lambda auth: auth["user"] if auth else None)
    assert identity.connection_grant({"user": 9}) == Grant("9")
    assert identity.connection_grant(None) is None
    assert identity.request_owner() is None


def test_callable_identity_lets_a_bad_owner_fail_loudly() -> None:
    with pytest.raises(ValueError, match="empty"):
        CallableIdentity(lambda: "").request_owner()


# --- FlaskLoginIdentity ---------------------------------------------------------------------


class User(UserMixin):
    def __init__(self, user_id: int) -> None:
        self.id = user_id


@pytest.fixture
def login_app() -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True)
    manager = LoginManager(app)
    manager.user_loader(lambda user_id: User(int(user_id)) if user_id == "7" else None)
    identity = FlaskLoginIdentity()

    @app.post("/login")
    def login() -> str:
        login_user(User(7))
        return "ok"

    @app.get("/owner")
    def owner() -> str:
        return repr(identity.request_owner())

    return app


def test_flask_login_anonymous_requests_have_no_owner(login_app: Flask) -> None:
    with login_app.test_request_context("/"):
        assert FlaskLoginIdentity().request_owner() is None
        assert FlaskLoginIdentity().connection_grant(None) is None


def test_flask_login_owner_is_the_logged_in_users_id_as_a_string(login_app: Flask) -> None:
    with login_app.test_request_context("/"):
        login_user(User(7))
        assert FlaskLoginIdentity().request_owner() == "7"
        assert FlaskLoginIdentity().connection_grant(None) == Grant("7", expires_at=None)


def test_flask_login_reads_the_session_cookie_of_a_later_request(login_app: Flask) -> None:
    client = login_app.test_client()
    assert client.get("/owner").text == "None"
    client.post("/login")
    assert client.get("/owner").text == "'7'"


def test_flask_login_without_a_login_manager_is_a_config_error() -> None:
    app = Flask(__name__)
    with app.test_request_context("/"), pytest.raises(ConfigError, match="LoginManager"):
        FlaskLoginIdentity().request_owner()


def test_an_adapter_without_its_library_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "flask_login", None)
    with pytest.raises(ConfigError) as caught:
        FlaskLoginIdentity()
    assert str(caught.value) == "FlaskLoginIdentity needs Flask-Login: pip install Flask-Login"


# --- JWTIdentity ----------------------------------------------------------------------------


@pytest.fixture
def jwt_app() -> Flask:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY="k" * 32, TESTING=True)
    JWTManager(app)
    return app


def access(app: Flask, identity: str = "7", **kwargs: Any) -> str:
    with app.app_context():
        return create_access_token(identity=identity, **kwargs)


def refresh(app: Flask) -> str:
    with app.app_context():
        return create_refresh_token(identity="7")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(call: Any, *args: Any) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        call(*args)
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}
    return caught.value


def test_jwt_request_owner_is_the_tokens_identity(jwt_app: Flask) -> None:
    with jwt_app.test_request_context("/", headers=bearer(access(jwt_app))):
        assert JWTIdentity().request_owner() == "7"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (None, "Missing Authorization Header"),
        (lambda app: access(app, expires_delta=timedelta(seconds=-1)), "token expired"),
        (refresh, "invalid token: Only non-refresh tokens are allowed"),
        (lambda _app: "not.a.jwt", "invalid token: "),
    ],
)
def test_jwt_request_refusals_say_why_like_the_service(
    jwt_app: Flask, token: Any, detail: str
) -> None:
    headers = bearer(token(jwt_app)) if token else {}
    with jwt_app.test_request_context("/", headers=headers):
        assert refused(JWTIdentity().request_owner).detail.startswith(detail)


def test_jwt_request_owner_honours_the_apps_blocklist_and_user_loader(jwt_app: Flask) -> None:
    manager: JWTManager = jwt_app.extensions["flask-jwt-extended"]
    manager.token_in_blocklist_loader(lambda _h, payload: payload["sub"] == "revoked")
    manager.user_lookup_loader(lambda _h, payload: None if payload["sub"] == "gone" else object())
    for owner, detail in [("revoked", "token revoked"), ("gone", "unknown user")]:
        with jwt_app.test_request_context("/", headers=bearer(access(jwt_app, owner))):
            assert refused(JWTIdentity().request_owner).detail == detail


def test_jwt_grant_comes_from_the_auth_payload_or_a_bearer_header(jwt_app: Flask) -> None:
    token = access(jwt_app, additional_claims={"fam": "f1"})
    with jwt_app.test_request_context("/"):
        from_auth = JWTIdentity().connection_grant({"token": token})
    with jwt_app.test_request_context("/", headers=bearer(token)):
        from_header = JWTIdentity().connection_grant(None)
    assert from_auth == from_header
    assert from_auth is not None
    assert from_auth.owner == "7"
    assert from_auth.expires_at is not None
    assert from_auth.expires_at == from_auth.claims["exp"]
    assert from_auth.token_id is not None
    assert from_auth.token_id == from_auth.claims["jti"]
    assert from_auth.claims["fam"] == "f1"


@pytest.mark.parametrize(
    ("auth", "detail"),
    [
        (None, "an access token is required"),
        ({"token": 12}, "an access token is required"),
        (lambda app: {"token": refresh(app)}, "an access token is required"),
        (
            lambda app: {"token": access(app, expires_delta=timedelta(seconds=-1))},
            "token expired",
        ),
        ({"token": "not.a.jwt"}, "invalid token"),
    ],
)
def test_jwt_connection_refusals(jwt_app: Flask, auth: Any, detail: str) -> None:
    with jwt_app.test_request_context("/"):
        payload = auth(jwt_app) if callable(auth) else auth
        assert refused(JWTIdentity().connection_grant, payload).detail == detail


def test_jwt_revoked_hook_refuses_connections_and_ends_live_ones(jwt_app: Flask) -> None:
    banned: set[str] = set()
    asked: list[list[Mapping[str, Any]]] = []

    def hook(claims: Sequence[Mapping[str, Any]]) -> Collection[str]:
        asked.append(list(claims))
        return {c["jti"] for c in claims if c["fam"] in banned}

    identity = JWTIdentity(revoked=hook)
    token = access(jwt_app, additional_claims={"fam": "a"})
    with jwt_app.test_request_context("/"):
        grant = identity.connection_grant({"token": token})
        assert grant is not None
        assert identity.revoked([grant]) == set()
        banned.add("a")
        assert identity.revoked([grant]) == {grant.token_id}
        assert refused(identity.connection_grant, {"token": token}).detail == "token revoked"
    assert all(list(c) == ["jti", "fam", "sub", "iat", "exp"] for call in asked for c in call)


def test_jwt_hook_that_cannot_tell_passes_the_answer_on(jwt_app: Flask) -> None:
    identity = JWTIdentity(revoked=lambda _claims: None)
    with jwt_app.test_request_context("/"):
        grant = identity.connection_grant({"token": access(jwt_app)})
    assert grant is not None
    assert identity.revoked([grant]) is None


def test_jwt_without_a_hook_revokes_nothing_on_live_connections(jwt_app: Flask) -> None:
    with jwt_app.test_request_context("/"):
        grant = JWTIdentity().connection_grant({"token": access(jwt_app)})
    assert grant is not None
    assert JWTIdentity().revoked([grant]) == set()


def test_jwt_uses_the_apps_identity_claim(jwt_app: Flask) -> None:
    jwt_app.config["JWT_IDENTITY_CLAIM"] = "uid"
    token = access(jwt_app, "alice")
    with jwt_app.test_request_context("/", headers=bearer(token)):
        assert JWTIdentity().request_owner() == "alice"
        grant = JWTIdentity().connection_grant(None)
    assert grant is not None
    assert grant.owner == "alice"
    assert grant.claims["uid"] == "alice"


# --- imports --------------------------------------------------------------------------------


def test_importing_the_module_needs_neither_flask_login_nor_flask_jwt_extended() -> None:
    script = (
        "import sys, jobcast.identity\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'flask_login', 'flask_jwt_extended', 'jwt'}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert run.stdout.strip() == "[]"
