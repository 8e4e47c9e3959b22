"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from jobcast import create_app, migrate
from jobcast.extensions import db


def test_upgrade_then_check_finds_no_difference_and_downgrade_empties(tmp_path: Path) -> None:
    app = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'm.db'}"})
    with app.app_context():
        migrate.upgrade()
        command.check(migrate.alembic_config())  # raises if models and migrations differ
        assert {"users", "jobs", "orders", "user_stats"} <= set(
            inspect(db.engine).get_table_names()
        )
        migrate.downgrade("base")
        assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
