"""Schema migrations (Alembic) for the app in context: ``jobcast db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring the database of the current app up to ``revision``; call inside an app context."""
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str) -> None:
    command.downgrade(alembic_config(), revision)


def make_revision(message: str) -> None:
    """Autogenerate a migration from the models (for jobcast's own developers)."""
    command.revision(alembic_config(), message=message, autogenerate=True)
