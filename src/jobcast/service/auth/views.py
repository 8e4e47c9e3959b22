"""The auth endpoints: register, login, refresh, logout, me."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, jsonify
from flask_jwt_extended import current_user, get_jwt, jwt_required
from pydantic import BaseModel, BeforeValidator, EmailStr, Field

from jobcast.api.http import parse_body
from jobcast.api.openapi.describe import Reply, operation
from jobcast.api.schemas import Tokens, User
from jobcast.runtime import current_runtime
from jobcast.service.auth import users
from jobcast.service.auth.revocations import revoke
from jobcast.service.auth.tokens import issue_tokens, rotate
from jobcast.service.extensions import limiter
from jobcast.service.limits import by_email, by_ip, by_user, failed_login, limit

bp = Blueprint("auth", __name__, url_prefix="/api/v1")


def _printable(value: object) -> object:
    """Refuse what no address holds before the database or a Redis key sees it (PostgreSQL
    refuses NUL in text, SQLite a lone surrogate: each was a 500)."""
    if isinstance(value, str) and not users.typable(value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


#: An email to register: printable, whatever else the field checks. Login takes any string
#: (its schema says so) and answers an unprintable one as an unknown address.
Printable = BeforeValidator(_printable)


class Credentials(BaseModel):
    email: Annotated[EmailStr, Printable]
    # A password may hold any character that encodes; pydantic refuses a lone surrogate
    # (string_unicode) wherever the field has a constraint, as it does here.
    password: str = Field(min_length=8, max_length=1024)


class LoginForm(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


@bp.post("/auth/register")
@operation(
    summary="Create an account",
    tag="auth",
    operation_id="register",
    auth="none",
    body=Credentials,
    replies={201: Reply("The new account.", User)},
    errors=(409,),
    rate_limited=True,
)
@limiter.limit(limit("register_ip"), key_func=by_ip)
def register() -> tuple[Response, int]:
    form = parse_body(Credentials)
    user = users.create_user(form.email, form.password)
    return jsonify(user.to_dict()), 201


@bp.post("/auth/login")
@operation(
    summary="Sign in",
    tag="auth",
    operation_id="login",
    auth="none",
    body=LoginForm,
    replies={200: Reply("An access token and a refresh token.", Tokens)},
    errors=(401,),
    rate_limited=True,
)
@limiter.limit(limit("login_ip"), key_func=by_ip, deduct_when=failed_login)
@limiter.limit(limit("login_email"), key_func=by_email, deduct_when=failed_login)
def login() -> Response:
    form = parse_body(LoginForm)
    user = users.authenticate(form.email, form.password)
    return jsonify(issue_tokens(user.id))


@bp.post("/auth/refresh")
@operation(
    summary="Exchange the refresh token for a new pair",
    tag="auth",
    operation_id="refresh",
    auth="refresh",
    replies={200: Reply("A new access token and a new refresh token.", Tokens)},
    rate_limited=True,
)
@limiter.limit(limit("refresh_user"), key_func=by_user)
@jwt_required(refresh=True)
def refresh() -> Response:
    """A new access token and a new refresh token; the one presented is used up."""
    return jsonify(rotate(get_jwt()))


@bp.post("/auth/logout")
@operation(
    summary="Sign out this session",
    tag="auth",
    operation_id="logout",
    replies={204: Reply("Signed out.")},
)
@jwt_required()
def logout() -> tuple[str, int]:
    """Sign out this session: its access token and its refresh token stop working."""
    revoke(current_runtime().redis, get_jwt())
    return "", 204


@bp.get("/me")
@operation(
    summary="The signed-in user",
    tag="auth",
    operation_id="getMe",
    replies={200: Reply("The user.", User)},
)
@jwt_required()
def me() -> Response:
    return jsonify(current_user.to_dict())
