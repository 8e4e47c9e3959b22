"""jobs: rows move to jobcast_jobs (jobcast's own history, owner as a string), jobs is dropped

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:00:00

jobcast's ``jobcast_0001`` must be applied first: ``jobcast.service.migrate.upgrade`` runs jobcast's
history before this one. The downgrade recreates ``jobs`` and copies back the rows owned by a
user of this service, and leaves ``jobcast_jobs`` to jobcast's own downgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jobcast.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every column but owner_id, by the same name in both tables.
COLUMNS = (
    "id",
    "type",
    "params",
    "status",
    "progress",
    "message",
    "result",
    "result_key",
    "error",
    "attempts",
    "celery_task_id",
    "request_id",
    "idempotency_key",
    "request_hash",
    "dispatched_at",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
)
jobs = sa.table("jobs", sa.column("owner_id", sa.Integer()), *map(sa.column, COLUMNS))
jobcast_jobs = sa.table(
    "jobcast_jobs", sa.column("owner_id", sa.String()), *map(sa.column, COLUMNS)
)
users = sa.table("users", sa.column("id", sa.Integer()))


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("jobcast_jobs"):
        raise RuntimeError(
            "migration 0006 moves jobs into jobcast_jobs, which does not exist: apply jobcast's"
            " own migrations first (jobcast.db.migrate.upgrade, or jobcast.service.migrate.upgrade)"
        )
    # jobs is the live table at 0005: its rows win over any an earlier downgrade left behind.
    op.execute(sa.delete(jobcast_jobs).where(jobcast_jobs.c.id.in_(sa.select(jobs.c.id))))
    op.execute(
        sa.insert(jobcast_jobs).from_select(
            ["owner_id", *COLUMNS],
            sa.select(
                sa.cast(jobs.c.owner_id, sa.String(255)), *(jobs.c[name] for name in COLUMNS)
            ),
        )
    )
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
    op.drop_index("uq_jobs_owner_idempotency", table_name="jobs")
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    op.drop_table("jobs")


def downgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
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
        sa.Column("created_at", jobcast.db.types.UTCDateTime(), nullable=False),
        sa.Column("started_at", jobcast.db.types.UTCDateTime(), nullable=True),
        sa.Column("finished_at", jobcast.db.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", jobcast.db.types.UTCDateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("dispatched_at", jobcast.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_jobs_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_owner_created", "jobs", ["owner_id", "created_at", "id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index(
        "uq_jobs_owner_idempotency", "jobs", ["owner_id", "idempotency_key"], unique=True
    )
    op.create_index("ix_jobs_owner_status", "jobs", ["owner_id", "status"])
    if not sa.inspect(op.get_bind()).has_table("jobcast_jobs"):
        return  # jobcast's tables already went down: nothing to copy back
    # Only rows owned by one of this service's users fit jobs (an integer foreign key); the
    # join does the string-to-integer cast the portable way.
    op.execute(
        sa.insert(jobs).from_select(
            ["owner_id", *COLUMNS],
            sa.select(users.c.id, *(jobcast_jobs.c[name] for name in COLUMNS)).join_from(
                jobcast_jobs,
                users,
                jobcast_jobs.c.owner_id == sa.cast(users.c.id, sa.String(255)),
            ),
        )
    )
