"""jobs: index (owner_id, status) for the per-user active-job count every submit makes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_owner_status", "jobs", ["owner_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
