"""JWT issuing, rotation and the 401s; revocation itself lives in ``auth.revocations``.

Every token of one sign-in shares a family id (``fam``). A refresh token works once: refreshing
returns a new pair and marks the old refresh token used. Presenting a used one again means it
was stolen (or replayed), so the whole family is revoked: every access and refresh token of
that sign-in stops working. Logout revokes the family too. Both outlive Redis (the database
holds the record; see ``revocations``).
"""

from __future__ import annotations

import uuid
from typing import Any, ParamSpec, TypeVar

from flask import Flask, Response, g, has_request_context
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
)
from sqlalchemy import bindparam, select
from sqlalchemy.orm.util import identity_key

from jobcast.api.http import api_error_response
from jobcast.db import rows
from jobcast.errors import Unauthorized
from jobcast.runtime import current_runtime
from jobcast.service.auth.models import MAX_ID, User
from jobcast.service.auth.revocations import advance_family, is_revoked, revoke
from jobcast.service.extensions import db, jwt

# Every authenticated request loads its user: a statement built once (see ``jobcast.db.rows``).
_USER = select(User.__table__).where(User.__table__.c.id == bindparam("user_id"))

P = ParamSpec("P")
R = TypeVar("R")


def user_id_of(claims: dict[str, Any]) -> int | None:
    """The user id a verified token's ``sub`` names, or None when it names none.

    Only this server signs tokens, and it writes ``sub`` as the id's decimal digits; anything
    else (a word, a float, a list, a number past the id column's range) is refused here rather
    than turned into a 500 by ``int()`` or the database, and ``int()``'s leniency (" 1", "1_0",
    the Arabic-Indic digit one) names no user either.
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or sub[0] == "0":
        return None
    user_id = int(sub)
    return user_id if user_id <= MAX_ID else None


def _refused(detail: str) -> Unauthorized:
    """The 401 of every token problem, with the challenge RFC 6750 asks for."""
    return Unauthorized(detail, headers={"WWW-Authenticate": "Bearer"})


def unknown_user() -> Unauthorized:
    """The 401 of a valid token whose user no longer exists."""
    return _refused("unknown user")


def issue_tokens(
    user_id: int, family: str | None = None, refresh_jti: str | None = None
) -> dict[str, Any]:
    """A new access and refresh token; a new family for a sign-in, the old one on refresh
    (with the refresh token's jti that ``rotate`` recorded for the family)."""
    claims = {"fam": family or uuid.uuid4().hex}
    refresh = {**claims, "jti": refresh_jti} if refresh_jti else claims
    return {
        "access_token": create_access_token(identity=str(user_id), additional_claims=claims),
        "refresh_token": create_refresh_token(identity=str(user_id), additional_claims=refresh),
        "token_type": "Bearer",
        "expires_in": current_runtime().settings.access_token_minutes * 60,
    }


def rotate(claims: dict[str, Any]) -> dict[str, Any]:
    """Exchange a refresh token (its verified claims) for a new pair, once.

    The family's row names its one working refresh token and moves on atomically, so the first
    use wins; presenting a token the family has moved past revokes the family.
    """
    family = claims.get("fam")
    if not family:
        raise _refused("this refresh token belongs to no sign-in; sign in again")
    new_jti = str(uuid.uuid4())
    if not advance_family(family, claims["jti"], new_jti):
        revoke(current_runtime().redis, claims)
        raise Unauthorized(
            "this refresh token was already used; every session it began is now signed out"
        )
    return issue_tokens(int(claims["sub"]), family, refresh_jti=new_jti)


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
    def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
        user_id = user_id_of(payload)
        if user_id is None:
            return None  # the 401 of an unknown user
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
