"""Migration 0005 adds the token state that outlives Redis, and takes it away again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from jobcast import create_app
from jobcast.service import migrate
from jobcast.service.extensions import db

TABLES = {"revoked_tokens", "refresh_families"}


def test_0005_round_trips_its_tables_and_their_expiry_indexes(tmp_path: Path) -> None:
    app = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'm.db'}"})
    with app.app_context():
        migrate.upgrade("0005")
        schema = inspect(db.engine)
        assert set(schema.get_table_names()) >= TABLES
        assert schema.get_pk_constraint("revoked_tokens")["constrained_columns"] == ["kind", "id"]
        for table in TABLES:
            indexes = {i["name"]: i["column_names"] for i in schema.get_indexes(table)}
            assert indexes == {f"ix_{table}_expires_at": ["expires_at"]}
        migrate.downgrade("0004")
        assert not TABLES & set(inspect(db.engine).get_table_names())
        migrate.upgrade("0005")
        assert set(inspect(db.engine).get_table_names()) >= TABLES
