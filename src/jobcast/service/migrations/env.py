"""Alembic environment: migrate the service's tables of the Flask app whose context is pushed.

jobcast's own tables (``jobcast_*``, the jobs table among them) are not in the service's
metadata: they have a history of their own (``jobcast.db.migrate``), left out here.
"""

from alembic import context

import jobcast.service.admin.models
import jobcast.service.auth.models
import jobcast.service.builtin.models  # noqa: F401
from jobcast.db.migrate import skip_jobcast_tables
from jobcast.service.extensions import db

with db.engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        include_object=skip_jobcast_tables,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
