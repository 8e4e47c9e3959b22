"""jobcast_jobs.traceparent: the submit's span context, so every attempt joins its trace

Revision ID: jobcast_0002
Revises: jobcast_0001
Create Date: 2026-12-04 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "jobcast_0002"
down_revision: str | None = "jobcast_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobcast_jobs", sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table (batch mode); other databases alter it.
    with op.batch_alter_table("jobcast_jobs") as batch:
        batch.drop_column("traceparent")
