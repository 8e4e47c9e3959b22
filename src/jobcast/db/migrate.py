"""Migrations of jobcast's own tables (Alembic), for the app in context: ``flask jobcast db``.

jobcast's tables have a history of their own, apart from the host app's. A host has its own
Alembic history (Flask-Migrate's, often) over its own models; were jobcast's tables in it, every
host would have to autogenerate jobcast's schema, and each later change of it, into migrations
it maintains. Shipped with the package, jobcast's history upgrades its tables whatever the host
does. The two share the database and keep out of each other's way: this history records itself
in ``jobcast_alembic_version`` (not the host's ``alembic_version``) and looks only at tables named
``jobcast_*``; a host's env leaves those out with ``skip_jobcast_tables``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from jobcast.db.database import db

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "jobcast_alembic_version"
TABLE_PREFIX = "jobcast_"


def alembic_config() -> Config:
    """The Alembic configuration of jobcast's history (for ``alembic.command``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring jobcast's tables up to ``revision``; call inside an app context."""
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str) -> None:
    """Take jobcast's tables down to ``revision`` (``base``: none left); call inside an app
    context."""
    command.downgrade(alembic_config(), revision)


def current() -> str | None:
    """The revision jobcast's tables are at, None before the first upgrade; inside an app
    context."""
    with db.engine.connect() as connection:
        migrations = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return migrations.get_current_revision()


def make_revision(message: str) -> None:
    """Autogenerate a migration from ``jobcast.db.tables`` (for jobcast's own developers)."""
    command.revision(alembic_config(), message=message, autogenerate=True)


def only_jobcast_tables(_obj: Any, name: str | None, type_: str, *_args: Any) -> bool:
    """``include_object`` of jobcast's env: its tables only, never a host's."""
    return type_ != "table" or (name or "").startswith(TABLE_PREFIX)


def skip_jobcast_tables(_obj: Any, name: str | None, type_: str, *_args: Any) -> bool:
    """``include_object`` for a host's env (``Migrate(app, db, include_object=...)`` with
    Flask-Migrate): leave jobcast's tables, its version table among them, to jobcast's history."""
    return type_ != "table" or not (name or "").startswith(TABLE_PREFIX)
