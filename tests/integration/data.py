"""Direct access to the stack's database: seed the shop's orders, and read back the truth.

The built-in jobs are checked against what the database holds, read here with plain queries
and Python arithmetic rather than with the jobs' own query code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobcast.service.builtin.models import Order
from jobcast.service.builtin.seed import seed_orders
from jobcast.service.extensions import db

#: The header row of the order exports, as their contract states it.
CSV_HEADER = [
    "id",
    "created_at",
    "customer",
    "region",
    "product",
    "quantity",
    "unit_price_cents",
    "total_cents",
    "status",
]


@dataclass(frozen=True)
class OrderRow:
    """One order as plain values, comparable with what an export wrote."""

    id: int
    created_at: Any
    customer: str
    region: str
    product: str
    quantity: int
    unit_price_cents: int
    total_cents: int
    status: str


class StackData:
    """Rows of the stack's database, through an in-process app with the stack's settings."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.app.app_context():
            yield db.session

    def seed(self, user_id: int, rows: int, *, seed: int) -> None:
        """Give ``user_id`` ``rows`` random orders, the same ones for the same ``seed``."""
        with self.app.app_context():
            seed_orders(user_id, rows, seed=seed)

    def orders(self, user_id: int) -> list[OrderRow]:
        """Every order of ``user_id``, by id."""
        with self.session() as session:
            found = session.scalars(
                select(Order).where(Order.user_id == user_id).order_by(Order.id)
            ).all()
            return [
                OrderRow(
                    o.id,
                    o.created_at,
                    o.customer,
                    o.region,
                    o.product,
                    o.quantity,
                    o.unit_price_cents,
                    o.total_cents,
                    o.status,
                )
                for o in found
            ]
