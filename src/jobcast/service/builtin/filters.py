"""The order filters of the built-in jobs and the one query they make.

``OrderFilter`` is what a caller may ask of their orders (region, status, a range of days or
instants, a minimum total); ``select_orders`` is the one place those filters become SQL.
``export.csv``, ``export.xlsx``, ``report.xlsx`` and ``users.process`` all read through it, so
an owner's orders are chosen the same way, and only theirs, everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import ColumnElement, Select, select

from jobcast.service.builtin.models import Order

# Literal types need the values spelled out; tests/unit/test_exports.py checks that they are
# exactly models.REGIONS and models.ORDER_STATUSES.
Region = Literal["north", "south", "east", "west"]
OrderStatus = Literal["pending", "paid", "shipped", "refunded"]

_ORDERS = Order.__table__
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _whole_day(value: Any) -> Any:
    """Keep a bare ``YYYY-MM-DD`` a date (a whole day); pydantic would read it as midnight."""
    if isinstance(value, str) and _DAY.fullmatch(value.strip()):
        return date.fromisoformat(value.strip())
    return value


_EARLIEST, _LATEST = date(1900, 1, 1), date(9998, 12, 31)


def _utc(value: date | datetime) -> date | datetime:
    """A datetime without an offset means UTC, as every timestamp of the API does.

    Bounds are kept to years 1900-9998 so a day added or an offset removed never leaves the
    calendar (which would fail the job later instead of the request now).
    """
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        day = value.astimezone(UTC).date() if isinstance(value, datetime) else value
    except OverflowError:
        day = None
    if day is None or not _EARLIEST <= day <= _LATEST:
        raise ValueError(f"must fall between {_EARLIEST} and {_LATEST} (UTC)")
    return value


DateOrInstant = Annotated[datetime | date, BeforeValidator(_whole_day), AfterValidator(_utc)]


def _lower_bound(value: date | datetime) -> datetime:
    """The first instant ``value`` covers: midnight UTC for a date, itself for a datetime."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), UTC)


def _upper_bound(value: date | datetime) -> datetime:
    """The first instant after ``value``: next midnight for a date, +1 µs for a datetime.

    Both bounds then make one half-open range ``[from, to)`` whether the caller gave days or
    instants; a microsecond is the resolution of both SQLite (as stored) and PostgreSQL.
    """
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    return _lower_bound(value) + timedelta(days=1)


class OrderFilter(BaseModel):
    """Which of the caller's orders a job reads; a date bound includes its whole day (UTC)."""

    model_config = {"extra": "forbid"}

    region: Region | None = Field(default=None, description="Only orders of this region.")
    status: OrderStatus | None = Field(default=None, description="Only orders in this status.")
    created_from: DateOrInstant | None = Field(
        default=None, description="Orders created at or after this date (UTC) or instant."
    )
    created_to: DateOrInstant | None = Field(
        default=None, description="Orders created on or before this date (UTC) or instant."
    )
    # Capped at what the column (a 64-bit integer) can hold: a larger number would pass here
    # and then fail the job, where the database driver refuses to bind it.
    min_total_cents: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="Only orders whose total is at least this."
    )

    @field_validator("created_to")
    @classmethod
    def _not_before_from(
        cls, value: date | datetime | None, info: ValidationInfo
    ) -> date | datetime | None:
        start = info.data.get("created_from")
        if value is not None and start is not None and _lower_bound(start) >= _upper_bound(value):
            raise ValueError("created_to must not be before created_from")
        return value


def select_orders(owner_id: int, filters: OrderFilter, *columns: Any) -> Select[Any]:
    """``SELECT columns FROM orders WHERE`` the owner's orders matching ``filters``."""
    conditions: list[ColumnElement[bool]] = [_ORDERS.c.user_id == owner_id]
    if filters.region is not None:
        conditions.append(_ORDERS.c.region == filters.region)
    if filters.status is not None:
        conditions.append(_ORDERS.c.status == filters.status)
    if filters.created_from is not None:
        conditions.append(_ORDERS.c.created_at >= _lower_bound(filters.created_from))
    if filters.created_to is not None:
        conditions.append(_ORDERS.c.created_at < _upper_bound(filters.created_to))
    if filters.min_total_cents is not None:
        conditions.append(_ORDERS.c.total_cents >= filters.min_total_cents)
    return select(*columns).select_from(_ORDERS).where(*conditions)
