"""Schema migrations (Alembic) of the service for the app in context: ``jobcast db upgrade``.

Two histories share the database: jobcast's own tables (``jobcast.db.migrate``, the extension's)
and the service's (users, orders, tokens: ``migrations/`` here). The service's 0006 moves its old
``jobs`` rows into ``jobcast_jobs``, so jobcast's history goes up first and down last.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from jobcast.db import migrate as jobcast_history

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """The Alembic configuration of the service's history (for ``alembic.command``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring jobcast's tables to their head, then the service's up to ``revision``; call inside
    an app context."""
    jobcast_history.upgrade()
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str) -> None:
    """Take the service's tables down to ``revision``; ``base`` takes jobcast's down too."""
    command.downgrade(alembic_config(), revision)
    if revision == "base":
        jobcast_history.downgrade("base")


def make_revision(message: str) -> None:
    """Autogenerate a migration from the service's models (for jobcast's own developers)."""
    command.revision(alembic_config(), message=message, autogenerate=True)
