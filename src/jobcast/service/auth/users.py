"""Creating and authenticating users: the only place that commits user rows."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jobcast.errors import ApiError, Conflict
from jobcast.service.auth.models import User
from jobcast.service.auth.passwords import hash_password, verify_password
from jobcast.service.extensions import db


class BadCredentials(ApiError):
    status, slug, title = 401, "bad-credentials", "Invalid credentials"


# C0 and C1 controls, DEL, line and paragraph separators, and UTF-16 surrogates (a lone one
# reaches Python from a JSON escape such as "\ud800" and cannot be encoded as UTF-8).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def typable(email: str) -> bool:
    """Whether ``email`` could belong to an account: one holding a control character or a
    lone surrogate never can (and PostgreSQL refuses NUL in text, SQLite a lone surrogate)."""
    return _UNPRINTABLE.search(email) is None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def create_user(email: str, password: str) -> User:
    user = User(email=normalise_email(email), password_hash=hash_password(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("an account with this email already exists") from None
    return user


def authenticate(email: str, password: str) -> User:
    """The user with these credentials; the same 401 for an unknown email or a wrong password."""
    # An address no account can hold is unknown, like any other: the same 401, the same work.
    user = find_by_email(email) if typable(email) else None
    if not verify_password(user.password_hash if user else None, password):
        raise BadCredentials("email or password is incorrect")
    assert user is not None
    return user
