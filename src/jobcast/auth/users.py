"""Creating and authenticating users: the only place that commits user rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jobcast.auth.models import User
from jobcast.auth.passwords import hash_password, verify_password
from jobcast.errors import ApiError, Conflict
from jobcast.extensions import db


class BadCredentials(ApiError):
    status, slug, title = 401, "bad-credentials", "Invalid credentials"


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
    user = find_by_email(email)
    if not verify_password(user.password_hash if user else None, password):
        raise BadCredentials("email or password is incorrect")
    assert user is not None
    return user
