"""jobcast's own Alembic history lives beside a host's, and the service's 0006 hands its old
``jobs`` rows over to it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Engine, inspect, select, text

from jobcast import create_app
from jobcast.db import migrate as jobcast_history
from jobcast.db.database import Database, db
from jobcast.db.tables import Job
from jobcast.service import migrate
from jobcast.service.extensions import db as service_db

HOST_ENV = """
from alembic import context
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

from jobcast.db.migrate import skip_jobcast_tables

metadata = MetaData()
Table("notes", metadata, Column("id", Integer, primary_key=True), Column("body", String(200)))

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection, target_metadata=metadata, include_object=skip_jobcast_tables
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
engine.dispose()
"""

HOST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "host_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("body", sa.String(200)),
    )


def downgrade():
    op.drop_table("notes")
"""


@pytest.fixture
def database_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture
def host_config(tmp_path: Path, database_file: str) -> Config:
    """A host app's own Alembic history (table ``notes``, version table ``alembic_version``)."""
    scripts = tmp_path / "host_migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(textwrap.dedent(HOST_ENV))
    (scripts / "versions" / "host_0001_notes.py").write_text(textwrap.dedent(HOST_REVISION))
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", database_file)
    return config


@pytest.fixture
def host_app(database_file: str) -> Iterator[Flask]:
    """A bare host app with jobcast's database on the same file, where the extension keeps it
    (``app.extensions["jobcast"].database``)."""
    app = Flask("host")
    database = Database.from_url(database_file)
    app.extensions["jobcast"] = SimpleNamespace(database=database)
    yield app
    database.engine.dispose()


def head(config: Config) -> str | None:
    return ScriptDirectory.from_config(config).get_current_head()


def version(engine: Engine, table: str) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(text(f"SELECT version_num FROM {table}"))


@pytest.mark.parametrize("jobcast_first", [True, False], ids=["jobcast-first", "host-first"])
def test_jobcast_history_and_a_hosts_share_a_database_without_touching_each_other(
    host_app: Flask, host_config: Config, jobcast_first: bool
) -> None:
    upgrades: list[Callable[[], Any]] = [
        jobcast_history.upgrade,
        lambda: command.upgrade(host_config, "head"),
    ]
    with host_app.app_context():
        for step in upgrades if jobcast_first else reversed(upgrades):
            step()
        assert version(db.engine, "alembic_version") == head(host_config) == "host_0001"
        assert version(db.engine, "jobcast_alembic_version") == "jobcast_0002"
        assert jobcast_history.current() == head(jobcast_history.alembic_config())
        # Each raises on any difference: neither proposes to drop the other's tables.
        command.check(host_config)
        command.check(jobcast_history.alembic_config())

        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
        jobcast_history.downgrade("base")
        tables = set(inspect(db.engine).get_table_names())
        assert "jobcast_jobs" not in tables
        assert version(db.engine, "alembic_version") == "host_0001"
        with db.engine.connect() as connection:
            assert connection.scalars(text("SELECT body FROM notes")).all() == ["kept"]


@pytest.fixture
def service_app(tmp_path: Path) -> Flask:
    return create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'svc.db'}"})


NOW = "2026-12-01 10:00:00.000000"  # how SQLite stores a naive UTC datetime


def insert_user_and_job(user_id: int, job_id: str) -> None:
    """A user and one of its jobs, as the service wrote them before 0006 (integer owner)."""
    with service_db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, password_hash, created_at)"
                " VALUES (:id, :email, 'x', :now)"
            ),
            {"id": user_id, "email": f"u{user_id}@example.com", "now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, owner_id, type, params, status, progress, attempts,"
                " idempotency_key, created_at, updated_at)"
                " VALUES (:id, :owner, 'report', '{\"n\": 1}', 'succeeded', 1.0, 1, 'k1',"
                " :now, :now)"
            ),
            {"id": job_id, "owner": user_id, "now": NOW},
        )


def test_0006_moves_the_jobs_rows_into_jobcast_jobs_with_string_owners(
    service_app: Flask,
) -> None:
    with service_app.app_context():
        migrate.upgrade("0005")  # and jobcast's own history to its head, first
        assert {"jobs", "jobcast_jobs"} <= set(inspect(service_db.engine).get_table_names())
        insert_user_and_job(7, "job-1")

        migrate.upgrade()

        assert "jobs" not in inspect(service_db.engine).get_table_names()
        with service_db.engine.connect() as connection:
            rows = connection.execute(select(Job.__table__)).mappings().all()
        assert len(rows) == 1
        row = rows[0]
        assert row["id"] == "job-1"
        assert row["owner_id"] == "7"
        assert (row["type"], row["params"], row["status"]) == ("report", {"n": 1}, "succeeded")
        assert row["idempotency_key"] == "k1"
        assert row["created_at"] == datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_0006_downgrade_recreates_jobs_as_0005_left_it_with_the_users_rows(
    service_app: Flask, tmp_path: Path
) -> None:
    reference = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'r.db'}"})
    with reference.app_context():
        migrate.upgrade("0005")
        expected = jobs_schema(service_db.engine)
    with service_app.app_context():
        migrate.upgrade("0005")
        insert_user_and_job(7, "job-1")
        migrate.upgrade()
        with service_db.engine.begin() as connection:  # a job of an owner who is no user here
            connection.execute(
                text(
                    "INSERT INTO jobcast_jobs (id, owner_id, type, params, status, progress,"
                    " attempts, created_at, updated_at)"
                    " VALUES ('job-2', 'alice', 'report', '{}', 'queued', 0, 0, :now, :now)"
                ),
                {"now": NOW},
            )

        migrate.downgrade("0005")

        assert jobs_schema(service_db.engine) == expected
        with service_db.engine.connect() as connection:
            back = connection.execute(text("SELECT id, owner_id FROM jobs")).all()
            kept = connection.scalars(text("SELECT id FROM jobcast_jobs ORDER BY id")).all()
        assert [tuple(r) for r in back] == [("job-1", 7)]
        assert kept == ["job-1", "job-2"]  # jobcast's table is its own history's to drop

        migrate.upgrade()  # the copy left behind is replaced, not duplicated
        with service_db.engine.connect() as connection:
            owners = connection.execute(
                text("SELECT id, owner_id FROM jobcast_jobs ORDER BY id")
            ).all()
        assert [tuple(r) for r in owners] == [("job-1", "7"), ("job-2", "alice")]


def jobs_schema(engine: Engine) -> dict[str, Any]:
    schema = inspect(engine)
    return {
        "columns": {c["name"]: (str(c["type"]), c["nullable"]) for c in schema.get_columns("jobs")},
        "pk": schema.get_pk_constraint("jobs"),
        "fks": schema.get_foreign_keys("jobs"),
        "indexes": sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in schema.get_indexes("jobs")
        ),
    }
