"""revoked_tokens and refresh_families: token state that survives Redis losing its data

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jobcast.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", jobcast.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id", name=op.f("pk_revoked_tokens")),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    op.create_table(
        "refresh_families",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("refresh_jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", jobcast.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_families")),
    )
    op.create_index("ix_refresh_families_expires_at", "refresh_families", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_refresh_families_expires_at", table_name="refresh_families")
    op.drop_table("refresh_families")
    op.drop_index("ix_revoked_tokens_expires_at", table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
