"""The audit log: one row per admin action, who did what to which target, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from jobcast.db.types import UTCDateTime, utcnow
from jobcast.jobs.notify import iso
from jobcast.service.extensions import db


class AuditEntry(db.Model):  # type: ignore[name-defined]
    """An admin action. ``actor_id`` is the admin's user id, or null for the command line (the
    detail then says ``via: cli`` and the OS user); no foreign key, so the entry outlives the
    account. ``detail`` holds what the action needs to be read later, and its ``outcome``."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "actor_id": self.actor_id,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "detail": self.detail,
        }
