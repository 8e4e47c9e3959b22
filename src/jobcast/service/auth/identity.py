"""Who owns a job in the jobcast service: the user its access token names.

The extension's ``JWTIdentity``, with the service's revocations (logout, refresh-token reuse)
ending live sockets and streams, and a socket refused once its user is gone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from jobcast.identity import Grant, JWTIdentity
from jobcast.runtime import current_runtime
from jobcast.service.auth.models import User
from jobcast.service.auth.revocations import revoked_among
from jobcast.service.auth.tokens import unknown_user, user_id_of
from jobcast.service.extensions import db


def _revoked(tokens: Sequence[Mapping[str, Any]]) -> Collection[str] | None:
    try:
        return revoked_among(current_runtime().redis, [dict(t) for t in tokens])
    except RedisError:
        return None  # Redis away: decide on revocation next time rather than guess now


class ServiceIdentity(JWTIdentity):
    def __init__(self) -> None:
        super().__init__(revoked=_revoked)

    def connection_grant(self, auth: Any) -> Grant | None:
        grant = super().connection_grant(auth)
        if grant is not None:
            user_id = user_id_of(dict(grant.claims))
            if user_id is None or db.session.get(User, user_id) is None:
                raise unknown_user()
        return grant
