"""Alembic environment of jobcast's own tables, on the jobcast database of the app in context.

Its version table is ``jobcast_alembic_version`` and it looks only at tables named ``jobcast_*``,
so it shares a database with a host's own history without either touching the other's tables.
"""

from alembic import context

from jobcast.db.database import db
from jobcast.db.migrate import VERSION_TABLE, only_jobcast_tables
from jobcast.db.tables import Base

with db.engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=only_jobcast_tables,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
