"""Creating and authenticating users: the only place that commits user rows."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jobcast.errors import ApiError, Conflict, NotFound
from jobcast.service.admin import audit
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


def create_user(
    email: str, password: str, *, admin: bool = False, actor: audit.Actor | None = None
) -> User:
    """A new account; an admin one is recorded in the audit log, in the same commit."""
    user = User(email=normalise_email(email), password_hash=hash_password(password), is_admin=admin)
    db.session.add(user)
    try:
        db.session.flush()  # the id, for the audit entry
        if admin:
            detail = {"email": user.email, "admin": True}
            audit.add(actor or audit.Actor(None), "user.create", "user", user.id, detail)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("an account with this email already exists") from None
    return user


def set_admin(email: str, admin: bool, actor: audit.Actor) -> tuple[User, bool]:
    """Grant (``admin``) or take back the admin role; (the user, whether it changed). A change
    is recorded in the audit log in the same commit, and applies from the user's next request:
    admin requests read the role from this row."""
    user = find_by_email(email) if typable(email) else None
    if user is None:
        raise NotFound(f"no user {email!r}")
    if user.is_admin == admin:
        return user, False
    user.is_admin = admin
    action = "user.promote" if admin else "user.demote"
    audit.add(actor, action, "user", user.id, {"email": user.email})
    db.session.commit()
    return user, True


def authenticate(email: str, password: str) -> User:
    """The user with these credentials; the same 401 for an unknown email or a wrong password."""
    # An address no account can hold is unknown, like any other: the same 401, the same work.
    user = find_by_email(email) if typable(email) else None
    if not verify_password(user.password_hash if user else None, password):
        raise BadCredentials("email or password is incorrect")
    assert user is not None
    return user
