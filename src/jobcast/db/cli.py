"""``flask jobcast db ...``: migrate jobcast's own tables from the host app's Flask CLI.

The extension adds ``cli`` to the app's commands; every command runs in the app's context
(``AppGroup``), on the database jobcast was given. Alembic is imported only when a command
runs: a web or worker process never needs it.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

cli = AppGroup("jobcast", help="jobcast, the background-jobs extension.")


@cli.group("db")
def db_group() -> None:
    """Migrations of jobcast's own tables (apart from the app's)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply jobcast's migrations up to REVISION (default: head)."""
    from jobcast.db import migrate

    migrate.upgrade(revision)
    click.echo(f"jobcast tables upgraded to {migrate.current() or 'base'}")


@db_group.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Revert jobcast's migrations down to REVISION ('base' drops jobcast's tables)."""
    from jobcast.db import migrate

    migrate.downgrade(revision)
    click.echo(f"jobcast tables downgraded to {migrate.current() or 'base'}")


@db_group.command("current")
def current() -> None:
    """Show the revision jobcast's tables are at."""
    from jobcast.db import migrate

    click.echo(migrate.current() or "base (no jobcast tables yet)")
