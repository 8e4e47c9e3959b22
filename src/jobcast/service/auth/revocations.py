"""Token state that must outlive Redis: revocations, and each refresh family's one working token.

The database records every revocation (``revoked_tokens``), each row kept as long as the tokens
it covers could still be valid. Redis holds a copy that every request reads in one round trip,
marked complete by a key of its own; when Redis has lost it (restarted without its data), the
database answers until one process has copied the revocations back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import has_app_context
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Connection, Table, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobcast.db.types import utcnow
from jobcast.runtime import current_runtime
from jobcast.service.auth.models import RefreshFamily, RevokedToken
from jobcast.service.extensions import db


def _revoked_key(jti: str) -> str:
    return f"jobcast:revoked:{jti}"


def _family_key(family: str) -> str:
    return f"jobcast:family:{family}:revoked"


# Set, with no expiry, once Redis holds a copy of every revocation the database has. A Redis that
# lost its data lost this key too, so a check that reads it with the token's keys (one round
# trip) knows when the copy is gone.
_LOADED = "jobcast:revocations:loaded"
_LOADING = "jobcast:revocations:loading"
_LOAD_LOCK_SECONDS = 30
# Set the marker only if the lock taken before copying is still ours: a Redis wiped during the
# copy lost the lock too, and must not be marked as holding the copy.
_MARK_LOADED = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[2], '1')
  redis.call('del', KEYS[1])
  return 1
end
return 0
"""
_KEY_OF = {"jti": _revoked_key, "family": _family_key}
_REVOKED: Table = RevokedToken.__table__
_FAMILIES: Table = RefreshFamily.__table__
# Both dialects jobcast supports have an atomic INSERT ... ON CONFLICT.
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# A revocation this process wrote to the database but not to Redis (Redis failed in between):
# its next check drops the marker, so the copy is rebuilt with the revocation in it.
_copy_behind = threading.Event()


class RevocationsUnknown(RedisError):
    """Redis lost its copy of the revocations, and there is no app here to ask the database."""


def revoke(redis: Redis, claims: dict[str, Any]) -> None:
    """Revoke this token and, through its family, every token of the same sign-in.

    The database first, the record that outlives Redis; then Redis, the copy requests read.
    """
    expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    revoked = [{"kind": "jti", "id": claims["jti"], "expires_at": expires_at}]
    if claims.get("fam"):
        days = current_runtime().settings.refresh_token_days
        revoked.append(
            {"kind": "family", "id": claims["fam"], "expires_at": utcnow() + timedelta(days=days)}
        )
    with db.engine.begin() as conn:
        insert = _INSERTS[conn.dialect.name](_REVOKED)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["kind", "id"], set_={"expires_at": insert.excluded.expires_at}
            ),
            revoked,
        )
        _prune(conn, _REVOKED)
    try:
        _copy(redis, revoked)
    except RedisError:
        _copy_behind.set()
        raise


def _copy(redis: Redis, revoked: Iterable[Any]) -> None:
    """Write revocations (rows or their dicts) into Redis, each key expiring with its row."""
    now = time.time()
    with redis.pipeline(transaction=False) as pipe:
        for row in revoked:
            ttl = max(1, int(row["expires_at"].timestamp() - now) + 1)
            pipe.set(_KEY_OF[row["kind"]](row["id"]), "1", ex=ttl)
        pipe.execute()


def _prune(conn: Connection, table: Table) -> None:
    """Delete the rows whose tokens have all expired. Done as rows are added, so the table stays
    the size of what is live without a sweep of its own."""
    conn.execute(delete(table).where(table.c.expires_at <= utcnow()))


def _keys(claims: dict[str, Any]) -> list[str]:
    keys = [_revoked_key(claims["jti"])]
    if claims.get("fam"):
        keys.append(_family_key(claims["fam"]))
    return keys


def is_revoked(redis: Redis, claims: dict[str, Any]) -> bool:
    """Whether this token or its sign-in is revoked: one round trip that also says whether Redis
    still holds its copy of the revocations; when it does not, the database answers."""
    if _copy_behind.is_set():
        _drop_copy(redis)
    values: list[str | None] = redis.mget(_LOADED, *_keys(claims))  # type: ignore[assignment]
    loaded, *found = values
    if loaded is None:
        return bool(_revoked_in_database(redis, [claims]))
    return any(found)


def revoked_among(redis: Redis, tokens: Iterable[dict[str, Any]], batch: int = 1000) -> set[str]:
    """The jtis of ``tokens`` that are revoked: pipelined, one round trip per ``batch`` tokens,
    each token asked once (a web process re-checks thousands of sockets every few seconds)."""
    if _copy_behind.is_set():
        _drop_copy(redis)
    unique = list({claims["jti"]: claims for claims in tokens}.values())
    revoked: set[str] = set()
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        pipe = redis.pipeline(transaction=False)
        pipe.exists(_LOADED)
        for claims in chunk:
            pipe.exists(*_keys(claims))
        loaded, *counts = pipe.execute()
        if not loaded:
            revoked |= _revoked_in_database(redis, chunk)
            continue
        revoked.update(c["jti"] for c, n in zip(chunk, counts, strict=True) if n)
    return revoked


def _drop_copy(redis: Redis) -> None:
    """Mark Redis's copy of the revocations as incomplete, so the next check rebuilds it."""
    redis.delete(_LOADED)
    _copy_behind.clear()


def _revoked_in_database(redis: Redis, tokens: list[dict[str, Any]]) -> set[str]:
    """The jtis of ``tokens`` the database has revoked, asked while Redis lacks its copy of the
    revocations. One caller at a time rebuilds the copy first; the others ask without waiting.

    Needs an app context; without one (a background sweep) this raises RevocationsUnknown, a
    RedisError, so the caller decides later rather than take a missing copy for "not revoked".
    """
    if not has_app_context():
        raise RevocationsUnknown("Redis has lost its copy of the revocations") from None
    _refill(redis)
    jtis = [claims["jti"] for claims in tokens]
    families = [claims["fam"] for claims in tokens if claims.get("fam")]
    asked = select(_REVOKED.c.kind, _REVOKED.c.id).where(
        or_(
            and_(_REVOKED.c.kind == "jti", _REVOKED.c.id.in_(jtis)),
            and_(_REVOKED.c.kind == "family", _REVOKED.c.id.in_(families)),
        )
    )
    # A connection of its own, given back at once: an event stream checks from a generator
    # that would otherwise hold the session's connection for as long as it runs.
    with db.engine.connect() as conn:
        found = {(kind, ident) for kind, ident in conn.execute(asked)}
    return {
        claims["jti"]
        for claims in tokens
        if ("jti", claims["jti"]) in found or ("family", claims.get("fam")) in found
    }


def _refill(redis: Redis) -> None:
    """Copy every unexpired revocation from the database into Redis, then set the marker. A
    process that finds another one copying leaves the copy to it."""
    owner = uuid.uuid4().hex
    if not redis.set(_LOADING, owner, nx=True, ex=_LOAD_LOCK_SECONDS):
        return
    live = select(_REVOKED).where(_REVOKED.c.expires_at > utcnow())
    with db.engine.connect() as conn:
        for chunk in conn.execution_options(yield_per=1000).execute(live).partitions():
            _copy(redis, [row._mapping for row in chunk])
    redis.eval(_MARK_LOADED, 2, _LOADING, _LOADED, owner)


def advance_family(family: str, jti: str, new_jti: str) -> bool:
    """Make ``new_jti`` the family's refresh token if ``jti`` is; False when ``jti`` was used
    before (a refresh token works once, across Redis restarts: the row is the record)."""
    expires_at = utcnow() + timedelta(days=current_runtime().settings.refresh_token_days)
    with db.engine.begin() as conn:
        moved = conn.execute(
            update(_FAMILIES)
            .where(_FAMILIES.c.id == family, _FAMILIES.c.refresh_jti == jti)
            .values(refresh_jti=new_jti, expires_at=expires_at)
        )
        if moved.rowcount:
            return True
        # Signing in writes no row, so none yet means this is the sign-in's first refresh; a
        # row naming another token means this one was used before.
        # RETURNING says whether the row went in: on PostgreSQL (psycopg) the rowcount of an
        # INSERT that did nothing on conflict was not 0, which let a reused token through.
        first = conn.execute(
            _INSERTS[conn.dialect.name](_FAMILIES)
            .values(id=family, refresh_jti=new_jti, expires_at=expires_at)
            .on_conflict_do_nothing()
            .returning(_FAMILIES.c.id)
        ).first()
        if first is None:
            return False
        _prune(conn, _FAMILIES)
        return True
