"""The demo dataset the shipped jobs read and write: orders and per-user order statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from jobcast.db.types import UTCDateTime, utcnow
from jobcast.service.extensions import db

REGIONS = ("north", "south", "east", "west")
ORDER_STATUSES = ("pending", "paid", "shipped", "refunded")


class Order(db.Model):  # type: ignore[name-defined]
    """One order of the demo shop; every order belongs to one user (exports see only theirs)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_user_created", "user_id", "created_at"),
        # Exports stream one user's rows in id order: no sort of the whole set first.
        Index("ix_orders_user_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(db.Integer, "sqlite"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    customer: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(16))
    product: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]
    total_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))


class UserStats(db.Model):  # type: ignore[name-defined]
    """Order statistics ``users.process`` computes for one user."""

    __tablename__ = "user_stats"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    order_count: Mapped[int]
    total_cents: Mapped[int] = mapped_column(BigInteger)
    average_cents: Mapped[int] = mapped_column(BigInteger)
    by_status: Mapped[dict[str, Any]] = mapped_column(JSON)
    by_region: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
