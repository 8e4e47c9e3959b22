"""Who a rate limit counts: the client IP, the email being tried, or the signed-in user.

The limits themselves are settings (``JOBCAST_LIMIT_*``), read at request time so tests and
operators can change them without code. Flask-Limiter stores the counters in Redis, so every
web process shares them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Response, current_app, request
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from flask_limiter.util import get_remote_address

from jobcast.config import Settings


def limit(name: str) -> Callable[[], str]:
    """The current value of setting ``limit_<name>``, for ``@limiter.limit``."""

    def value() -> str:
        settings: Settings = current_app.config["JOBCAST"]
        return str(getattr(settings, f"limit_{name}"))

    return value


def failed_login(response: Response) -> bool:
    """Only failed attempts count against the login limits: guessing is what they stop."""
    return response.status_code == 401


def by_ip() -> str:
    return f"ip:{get_remote_address()}"


def by_email() -> str:
    """The email a login tries (hashed, so Redis keys hold no addresses); the IP if none."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return by_ip()
    return (
        "email:"
        + hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    )


def by_user() -> str:
    """The signed-in user; a bad or missing token is refused with 401 before counting."""
    verify_jwt_in_request(optional=True, refresh=request.endpoint == "auth.refresh")
    identity = get_jwt_identity()
    return f"user:{identity}" if identity is not None else by_ip()
