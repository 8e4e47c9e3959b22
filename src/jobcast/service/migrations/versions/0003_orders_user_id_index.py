"""orders: index (user_id, id) for exports streamed in id order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 21:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_user_id", "orders", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_user_id", table_name="orders")
