"""jobcast_jobs: the task log, every job's state, owned by a string with no foreign key

Revision ID: jobcast_0001
Revises:
Create Date: 2026-12-03 14:12:30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jobcast.db.types

revision: str = "jobcast_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("jobcast",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobcast_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("result_key", sa.String(length=512), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("celery_task_id", sa.String(length=36), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("dispatched_at", jobcast.db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", jobcast.db.types.UTCDateTime(), nullable=False),
        sa.Column("started_at", jobcast.db.types.UTCDateTime(), nullable=True),
        sa.Column("finished_at", jobcast.db.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", jobcast.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobcast_jobs")),
    )
    op.create_index(
        "ix_jobcast_jobs_owner_created", "jobcast_jobs", ["owner_id", "created_at", "id"]
    )
    op.create_index("ix_jobcast_jobs_status_created", "jobcast_jobs", ["status", "created_at"])
    op.create_index("ix_jobcast_jobs_owner_status", "jobcast_jobs", ["owner_id", "status"])
    op.create_index(
        "uq_jobcast_jobs_owner_idempotency",
        "jobcast_jobs",
        ["owner_id", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_jobcast_jobs_owner_idempotency", table_name="jobcast_jobs")
    op.drop_index("ix_jobcast_jobs_owner_status", table_name="jobcast_jobs")
    op.drop_index("ix_jobcast_jobs_status_created", table_name="jobcast_jobs")
    op.drop_index("ix_jobcast_jobs_owner_created", table_name="jobcast_jobs")
    op.drop_table("jobcast_jobs")
