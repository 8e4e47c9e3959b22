"""Random demo orders, inserted in batches so a million rows take seconds, not minutes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from jobcast.service.builtin.models import ORDER_STATUSES, REGIONS, Order
from jobcast.service.extensions import db

PRODUCTS = ("widget", "gadget", "gizmo", "doohickey", "sprocket", "flange", "bracket", "valve")
CUSTOMERS = tuple(f"customer-{n:04d}" for n in range(1, 501))
BATCH = 10_000


def seed_orders(user_id: int, rows: int, *, seed: int | None = None) -> None:
    """Insert ``rows`` orders for ``user_id``, spread over the last 365 days."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=365)
    for offset in range(0, rows, BATCH):
        batch = []
        for _ in range(min(BATCH, rows - offset)):
            quantity = rng.randint(1, 20)
            price = rng.randint(199, 49_999)
            batch.append(
                {
                    "user_id": user_id,
                    "created_at": start + timedelta(seconds=rng.randint(0, 365 * 86_400)),
                    "customer": rng.choice(CUSTOMERS),
                    "region": rng.choice(REGIONS),
                    "product": rng.choice(PRODUCTS),
                    "quantity": quantity,
                    "unit_price_cents": price,
                    "total_cents": quantity * price,
                    "status": rng.choice(ORDER_STATUSES),
                }
            )
        db.session.execute(insert(Order), batch)
        db.session.commit()
