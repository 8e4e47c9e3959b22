"""Who may use the admin API: a signed-in admin, as the users table says at this request.

Anyone else (anonymous, a bad or expired token, a user who is not an admin, one demoted a
moment ago) gets the 404 of a path that does not exist, on every admin path and method, so the
admin API cannot be found by probing it: an unknown method included, which jobcast's catch-all
would otherwise answer with a 405 naming the methods that exist.
"""

from __future__ import annotations

from flask import g, request
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from werkzeug.exceptions import NotFound

from jobcast.service.auth.models import User

PREFIX = "/api/v1/admin"


def admins_only() -> None:
    """Before every request of the app: on an admin path, 404 unless the caller is an admin."""
    path = request.path
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return
    user = _signed_in_user()
    if user is None or not user.is_admin:
        raise NotFound()
    g.jobcast_admin = user


def current_admin() -> User:
    """The admin of this request (``admins_only`` let it through)."""
    admin: User = g.jobcast_admin
    return admin


def _signed_in_user() -> User | None:
    """The user the access token names, loaded from the database, or None for any token
    problem: the 401s other paths give would tell that an admin path is there."""
    try:
        if verify_jwt_in_request() is None:
            return None  # OPTIONS, which JWT_EXEMPT_METHODS lets through unchecked
    except (JWTExtendedException, PyJWTError):
        return None
    user: User | None = get_current_user()
    return user
