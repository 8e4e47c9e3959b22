"""Alembic environment: migrate the database of the Flask app whose context is pushed."""

from alembic import context

import jobcast.auth.models
import jobcast.builtin.models
import jobcast.jobs.models  # noqa: F401
from jobcast.extensions import db

with db.engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
