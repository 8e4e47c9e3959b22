"""JWT issuing, rotation, the Redis revocation list, and the 401 for every token problem.

Every token of one sign-in shares a family id (``fam``). A refresh token works once: refreshing
returns a new pair and marks the old refresh token used. Presenting a used one again means it
was stolen (or replayed), so the whole family is revoked: every access and refresh token of
that sign-in stops working. Logout revokes the family too. Revocation keys live in Redis only
as long as the tokens they cover could still be valid.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from flask import Flask, Response, g, has_request_context
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    current_user,
    decode_token,
)
from jwt.exceptions import PyJWTError
from redis import Redis
from sqlalchemy import bindparam, select
from sqlalchemy.orm.util import identity_key

from jobcast import rows
from jobcast.auth.models import User
from jobcast.errors import ApiError, Unauthorized, api_error_response
from jobcast.extensions import db, jwt
from jobcast.runtime import current_runtime

# Every authenticated request loads its user: a statement built once (see ``jobcast.rows``).
_USER = select(User.__table__).where(User.__table__.c.id == bindparam("user_id"))
_FROM_TOKEN = "jobcast_user_from_token"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class TokenUser:
    """The user a verified access token names, not loaded: ``current_user`` in a view marked
    ``user_from_token``."""

    id: int


def user_from_token(view: Callable[P, R]) -> Callable[P, R]:
    """Skip loading the user's row for this view: ``current_user`` is a ``TokenUser``.

    Only for a view whose own statement refuses a user who no longer exists, with the same 401
    (the submit's INSERT does, through the jobs' foreign key to users): there the SELECT every
    other view runs first is a second query for an answer the write gives anyway. Any other
    error the view raises is checked against the user then, so a deleted user's token still
    gets only the 401 (not a validation error that lists the job types). Apply it outside the
    rate limit, whose key verifies the token first.
    """

    @functools.wraps(view)
    def marked(*args: P.args, **kwargs: P.kwargs) -> R:
        setattr(g, _FROM_TOKEN, True)
        try:
            return view(*args, **kwargs)
        except ApiError as exc:
            if exc.status != 401 and db.session.get(User, current_user.id) is None:
                raise unknown_user() from None
            raise

    return marked


def _refused(detail: str) -> Unauthorized:
    """The 401 of every token problem, with the challenge RFC 6750 asks for."""
    return Unauthorized(detail, headers={"WWW-Authenticate": "Bearer"})


def unknown_user() -> Unauthorized:
    """The 401 of a valid token whose user no longer exists."""
    return _refused("unknown user")


def _revoked_key(jti: str) -> str:
    return f"jobcast:revoked:{jti}"


def _family_key(family: str) -> str:
    return f"jobcast:family:{family}:revoked"


def _used_key(jti: str) -> str:
    return f"jobcast:refresh:{jti}:used"


def _ttl(claims: dict[str, Any]) -> int:
    return max(1, int(claims["exp"] - time.time()) + 1)


def revoke(redis: Redis, claims: dict[str, Any]) -> None:
    """Revoke this token and, through its family, every token of the same sign-in."""
    family_ttl = current_runtime().settings.refresh_token_days * 86_400
    with redis.pipeline(transaction=False) as pipe:
        pipe.set(_revoked_key(claims["jti"]), "1", ex=_ttl(claims))
        if claims.get("fam"):
            pipe.set(_family_key(claims["fam"]), "1", ex=family_ttl)
        pipe.execute()


def _keys(claims: dict[str, Any]) -> list[str]:
    keys = [_revoked_key(claims["jti"])]
    if claims.get("fam"):
        keys.append(_family_key(claims["fam"]))
    return keys


def is_revoked(redis: Redis, claims: dict[str, Any]) -> bool:
    return bool(redis.exists(*_keys(claims)))


def revoked_among(redis: Redis, tokens: Iterable[dict[str, Any]], batch: int = 1000) -> set[str]:
    """The jtis of ``tokens`` that are revoked: pipelined, one round trip per ``batch`` tokens,
    each token asked once (a web process re-checks thousands of sockets every few seconds)."""
    unique = list({claims["jti"]: claims for claims in tokens}.values())
    revoked: set[str] = set()
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        pipe = redis.pipeline(transaction=False)
        for claims in chunk:
            pipe.exists(*_keys(claims))
        revoked.update(c["jti"] for c, n in zip(chunk, pipe.execute(), strict=True) if n)
    return revoked


def issue_tokens(user_id: int, family: str | None = None) -> dict[str, Any]:
    """A new access and refresh token; a new family for a sign-in, the old one on refresh."""
    claims = {"fam": family or uuid.uuid4().hex}
    return {
        "access_token": create_access_token(identity=str(user_id), additional_claims=claims),
        "refresh_token": create_refresh_token(identity=str(user_id), additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": current_runtime().settings.access_token_minutes * 60,
    }


def rotate(claims: dict[str, Any]) -> dict[str, Any]:
    """Exchange a refresh token (its verified claims) for a new pair, once.

    The first use wins atomically (SET NX); a second use of the same token revokes the family.
    """
    redis = current_runtime().redis
    if not redis.set(_used_key(claims["jti"]), "1", nx=True, ex=_ttl(claims)):
        revoke(redis, claims)
        raise Unauthorized(
            "this refresh token was already used; every session it began is now signed out"
        )
    return issue_tokens(int(claims["sub"]), claims.get("fam"))


class TokenRejected(Exception):
    """An access token that cannot open a socket; the message says why."""


def access_claims(token: str) -> dict[str, Any]:
    """Check an access token outside a request (the Socket.IO connect): signature, expiry,
    type, revocation, and that the user still exists; returns its claims."""
    try:
        claims = decode_token(token)
    except PyJWTError as exc:
        reason = "token expired" if "expired" in str(exc).lower() else "invalid token"
        raise TokenRejected(reason) from None
    if claims.get("type") != "access":
        raise TokenRejected("an access token is required")
    if is_revoked(current_runtime().redis, claims):
        raise TokenRejected("token revoked")
    if db.session.get(User, int(claims["sub"])) is None:
        raise TokenRejected("unknown user")
    return claims


def init_tokens(app: Flask) -> None:
    """Answer every token problem with 401 problem+json (Flask-JWT-Extended's default is 422)."""

    def unauthorized(detail: str) -> Response:
        return api_error_response(_refused(detail))

    jwt.unauthorized_loader(lambda reason: unauthorized(reason))
    jwt.invalid_token_loader(lambda reason: unauthorized(f"invalid token: {reason}"))
    jwt.expired_token_loader(lambda _h, _p: unauthorized("token expired"))
    jwt.revoked_token_loader(lambda _h, _p: unauthorized("token revoked"))
    jwt.needs_fresh_token_loader(lambda _h, _p: unauthorized("fresh token required"))
    jwt.user_lookup_error_loader(lambda _h, _p: api_error_response(unknown_user()))
    jwt.token_verification_failed_loader(lambda _h, _p: unauthorized("token rejected"))

    @jwt.token_in_blocklist_loader
    def _check_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        return _revoked_in_this_request(payload)

    @jwt.user_lookup_loader
    def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | TokenUser | None:
        user_id = int(payload["sub"])
        if g.get(_FROM_TOKEN):
            return TokenUser(user_id)
        # A rate-limited view verifies its token twice; the second time the user is loaded.
        held: User | None = db.session.identity_map.get(identity_key(User, user_id))
        if held is not None:
            return held
        row = db.session.connection().execute(_USER, {"user_id": user_id}).first()
        return None if row is None else rows.adopt(db.session, User, row._mapping)


def _revoked_in_this_request(claims: dict[str, Any]) -> bool:
    """``is_revoked``, asked of Redis once per request and token.

    A rate-limited view verifies its token twice: for the limiter's ``by_user`` key, then in
    ``@jwt_required``. The second verification reuses the first one's answer instead of a
    second round trip (the user it loads comes from the session's identity map already).
    """
    if not has_request_context():
        return is_revoked(current_runtime().redis, claims)
    seen: dict[str, bool] = g.setdefault("jobcast_revocation_checked", {})
    if claims["jti"] not in seen:
        seen[claims["jti"]] = is_revoked(current_runtime().redis, claims)
    return seen[claims["jti"]]
