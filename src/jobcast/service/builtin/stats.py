"""``users.process``: the caller's order statistics, aggregated by the database and saved.

Bound to "io": the work is one GROUP BY that the database runs while the job waits, the kind
of job the gevent pool shares one process among by the hundred; it would only hold one of the
few process-pool slots the exports need for minutes of real CPU. (On SQLite, a development
database, the query runs inside the worker and holds its event loop for the query's length.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite

from jobcast.db.types import utcnow
from jobcast.errors import JobError, ServiceUnavailable
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import EmptyParams, job
from jobcast.service.builtin.filters import OrderFilter, select_orders
from jobcast.service.builtin.models import ORDER_STATUSES, REGIONS, Order, UserStats
from jobcast.service.extensions import db

# Both dialects jobcast supports have an atomic INSERT ... ON CONFLICT DO UPDATE.
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass
class Totals:
    """How many orders and how much they are worth, in cents."""

    count: int = 0
    total_cents: int = 0

    @property
    def average_cents(self) -> int:
        """The mean order, rounded to the cent; 0 when there are no orders."""
        return round(self.total_cents / self.count) if self.count else 0

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "total_cents": self.total_cents}


@dataclass
class Breakdown:
    """Totals overall, per status and per region; every known status and region is present."""

    overall: Totals = field(default_factory=Totals)
    by_status: dict[str, Totals] = field(
        default_factory=lambda: {status: Totals() for status in ORDER_STATUSES}
    )
    by_region: dict[str, Totals] = field(
        default_factory=lambda: {region: Totals() for region in REGIONS}
    )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe statistics: the job's result and the user_stats row alike."""
        return {
            "order_count": self.overall.count,
            "total_cents": self.overall.total_cents,
            "average_cents": self.overall.average_cents,
            "by_status": {name: t.to_dict() for name, t in self.by_status.items()},
            "by_region": {name: t.to_dict() for name, t in self.by_region.items()},
        }


def order_breakdown(owner_id: int, filters: OrderFilter) -> Breakdown:
    """The owner's matching orders totalled by one ``GROUP BY status, region``.

    One query instead of three reads one consistent snapshot, and it returns at most
    statuses x regions rows however many orders there are; the three views are sums of those.
    """
    query = select_orders(
        owner_id,
        filters,
        Order.status,
        Order.region,
        func.count(),
        func.coalesce(func.sum(Order.total_cents), 0),
    ).group_by(Order.status, Order.region)
    breakdown = Breakdown()
    for status, region, count, total_cents in db.session.execute(query):
        for totals in (
            breakdown.overall,
            breakdown.by_status.setdefault(status, Totals()),
            breakdown.by_region.setdefault(region, Totals()),
        ):
            totals.count += count
            totals.total_cents += int(total_cents)  # PostgreSQL sums bigints as numeric
    return breakdown


def _unsupported(dialect: str) -> str | None:
    if dialect in _INSERTS:
        return None
    return f"users.process needs SQLite or PostgreSQL, not {dialect}"


def check_database(params: EmptyParams, owner_id: str) -> None:
    """At submit: refuse (503) users.process on a database it cannot upsert into."""
    problem = _unsupported(db.engine.dialect.name)
    if problem:
        raise ServiceUnavailable(f"users.process cannot run on this server: {problem}")


def save_stats(owner_id: int, stats: dict[str, Any]) -> None:
    """Insert or update the owner's user_stats row in one statement, so two concurrent runs
    cannot both insert; the later one wins."""
    dialect = db.session.get_bind().dialect.name
    problem = _unsupported(dialect)
    if problem:
        raise JobError(problem, code="unsupported_database")
    values = {**stats, "computed_at": utcnow()}
    insert = _INSERTS[dialect](UserStats).values(user_id=owner_id, **values)
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=[UserStats.user_id],
            set_={name: insert.excluded[name] for name in values},
        )
    )
    db.session.commit()


@job("users.process", title="Compute my order statistics", bound="io", check=check_database)
def process(ctx: JobContext[EmptyParams]) -> dict[str, Any]:
    """Total the caller's orders by status and region and save them as their user_stats."""
    ctx.progress(0, "totalling orders")
    stats = order_breakdown(int(ctx.owner_id), OrderFilter()).to_dict()
    ctx.progress(60, "saving statistics")
    save_stats(int(ctx.owner_id), stats)
    ctx.progress(100, f"{stats['order_count']} orders totalled")
    return stats
