"""The users table, and the token state that must outlive Redis: revocations, refresh families."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from jobcast.db.types import UTCDateTime, utcnow
from jobcast.service.extensions import db

#: The largest id of ``users`` and ``audit_log``: their ids are INTEGER columns, 32 bits on
#: PostgreSQL, so a larger number in a token or a query is refused before it reaches one.
MAX_ID = 2**31 - 1


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Read from this row on every admin request (admin.guard), so a demotion works at once.
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email}


class RevokedToken(db.Model):  # type: ignore[name-defined]
    """A revoked token (kind ``jti``, by its jti) or sign-in (kind ``family``, by its family id),
    kept until every token it covers has expired. Redis holds a copy that every request reads;
    this row is what the copy is rebuilt from when Redis loses its data."""

    __tablename__ = "revoked_tokens"
    # Rebuilding the copy reads the unexpired rows; pruning deletes the expired ones.
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RefreshFamily(db.Model):  # type: ignore[name-defined]
    """A sign-in that has refreshed: the jti of the one refresh token of it that still works.

    Signing in writes no row; the first refresh does. Kept until that refresh token expires.
    """

    __tablename__ = "refresh_families"
    __table_args__ = (Index("ix_refresh_families_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    refresh_jti: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
