"""JWT issuing, the Redis revocation list, and the 401 answers for every token problem.

Revoked token ids (``jti``) are kept in Redis until the token would have expired anyway, so
the list never grows past the tokens still alive.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from jwt.exceptions import PyJWTError
from redis import Redis

from jobcast.auth.models import User
from jobcast.errors import problem_response
from jobcast.extensions import db, jwt
from jobcast.runtime import current_runtime


def _revoked_key(jti: str) -> str:
    return f"jobcast:revoked:{jti}"


def revoke(redis: Redis, claims: dict[str, Any]) -> None:
    ttl = max(1, int(claims["exp"] - time.time()) + 1)
    redis.set(_revoked_key(claims["jti"]), "1", ex=ttl)


def is_revoked(redis: Redis, claims: dict[str, Any]) -> bool:
    return bool(redis.exists(_revoked_key(claims["jti"])))


def issue_tokens(user: User, *, with_refresh: bool = True) -> dict[str, Any]:
    rt = current_runtime()
    body: dict[str, Any] = {
        "access_token": create_access_token(identity=str(user.id)),
        "token_type": "Bearer",
        "expires_in": rt.settings.access_token_minutes * 60,
    }
    if with_refresh:
        body["refresh_token"] = create_refresh_token(identity=str(user.id))
    return body


class TokenRejected(Exception):
    """An access token that cannot open a socket; the message says why."""


def user_id_from_access_token(token: str) -> int:
    """Check an access token outside a request (the Socket.IO connect): signature, expiry,
    type, revocation, and that the user still exists."""
    try:
        claims = decode_token(token)
    except PyJWTError as exc:
        reason = "token expired" if "expired" in str(exc).lower() else "invalid token"
        raise TokenRejected(reason) from None
    if claims.get("type") != "access":
        raise TokenRejected("an access token is required")
    if is_revoked(current_runtime().redis, claims):
        raise TokenRejected("token revoked")
    user_id = int(claims["sub"])
    if db.session.get(User, user_id) is None:
        raise TokenRejected("unknown user")
    return user_id


def init_tokens(app: Flask) -> None:
    """Answer every token problem with 401 problem+json (Flask-JWT-Extended's default is 422)."""

    def unauthorized(detail: str) -> Response:
        return problem_response(
            401,
            "unauthorized",
            "Authentication required",
            detail,
            headers={"WWW-Authenticate": "Bearer"},
        )

    jwt.unauthorized_loader(lambda reason: unauthorized(reason))
    jwt.invalid_token_loader(lambda reason: unauthorized(f"invalid token: {reason}"))
    jwt.expired_token_loader(lambda _h, _p: unauthorized("token expired"))
    jwt.revoked_token_loader(lambda _h, _p: unauthorized("token revoked"))
    jwt.needs_fresh_token_loader(lambda _h, _p: unauthorized("fresh token required"))
    jwt.user_lookup_error_loader(lambda _h, _p: unauthorized("unknown user"))
    jwt.token_verification_failed_loader(lambda _h, _p: unauthorized("token rejected"))

    @jwt.token_in_blocklist_loader
    def _check_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        return is_revoked(current_runtime().redis, payload)

    @jwt.user_lookup_loader
    def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
        return db.session.get(User, int(payload["sub"]))
