"""jobcast's tables, in a metadata of their own: the jobs table is the task log and the source
of truth for every job's state.

Names are prefixed (``jobcast_``) and the owner is a string with no foreign key, so the tables
sit beside any host app's own, and its users table stays its business.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jobcast.db.types import UTCDateTime, utcnow
from jobcast.jobs import states

#: The longest owner string the table holds (``identity.owner_str`` refuses longer ones).
OWNER_MAX = 255


#: Named constraints, so Alembic migrations are portable (the service's tables use it too).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """jobcast's own metadata, apart from any host's."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    __tablename__ = "jobcast_jobs"
    __table_args__ = (
        Index("ix_jobcast_jobs_owner_created", "owner_id", "created_at", "id"),
        Index("ix_jobcast_jobs_status_created", "status", "created_at"),
        # The active-job cap counts a user's unfinished jobs on every submit: from the index alone.
        Index("ix_jobcast_jobs_owner_status", "owner_id", "status"),
        # One job per (owner, Idempotency-Key); NULL keys never collide.
        Index("uq_jobcast_jobs_owner_idempotency", "owner_id", "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(OWNER_MAX))
    type: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=states.QUEUED)
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_key: Mapped[str | None] = mapped_column(String(512))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0)
    celery_task_id: Mapped[str | None] = mapped_column(String(36))
    request_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The submit's span context (W3C traceparent): every attempt's span joins its trace.
    traceparent: Mapped[str | None] = mapped_column(String(55))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_terminal(self) -> bool:
        return self.status in states.TERMINAL


#: The jobs table, for the statements built once at import (Core, typed as a Table).
JOBS: Table = Job.__table__  # type: ignore[assignment]
