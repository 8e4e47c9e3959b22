"""The Alembic histories, the service's and jobcast's own, build exactly the schema the models
describe, side by side in one database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from jobcast import create_app
from jobcast.db import migrate as jobcast_history
from jobcast.service import migrate
from jobcast.service.extensions import db


def test_upgrade_then_check_finds_no_difference_and_downgrade_empties(tmp_path: Path) -> None:
    app = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'm.db'}"})
    with app.app_context():
        migrate.upgrade()
        # Each raises if its models and migrations differ, and neither sees the other's tables.
        command.check(migrate.alembic_config())
        command.check(jobcast_history.alembic_config())
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "jobcast_jobs", "orders", "user_stats", "audit_log"} <= tables
        assert "jobs" not in tables

        migrate.downgrade("base")
        # Alembic keeps its version tables, emptied, at base.
        tables = set(inspect(db.engine).get_table_names())
        assert tables == {"alembic_version", "jobcast_alembic_version"}
        assert jobcast_history.current() is None
