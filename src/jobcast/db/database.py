"""jobcast's engine and sessions for one app, apart from the host's.

jobcast writes its rows through a sessionmaker of its own, bound to the engine it is given (the
host's Flask-SQLAlchemy engine, any SQLAlchemy ``Engine``) or one it makes from
``JOBCAST_DATABASE_URL``. Its sessions never commit or roll back the host's, and its listeners
sit on its own sessionmaker, and on an engine only when jobcast made that engine.

Code that runs inside an app context reaches them as ``db.session`` and ``db.engine``, the
shape Flask-SQLAlchemy users know, resolved per app: one process may hold many apps (tests).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from flask import current_app
from flask.globals import app_ctx
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

EngineSource = Engine | Callable[[], Engine]


class Database:
    """The engine and the app-context-scoped session jobcast uses in one app."""

    def __init__(self, source: EngineSource) -> None:
        self._source = source
        self._engine = source if isinstance(source, Engine) else None
        # Objects keep their values after a commit instead of reloading them on next access: a
        # running job reads its own row between commits, and reloading would hold a pooled
        # connection for the whole job.
        self._factory = sessionmaker(expire_on_commit=False)
        self.session: scoped_session[Session] = scoped_session(
            self._new_session,  # type: ignore[arg-type]
            scopefunc=_app_context_id,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Database:
        """A database on an engine of jobcast's own (so its SQLite pragmas are jobcast's to set)."""
        engine = create_engine(url, **options)
        event.listen(engine, "connect", sqlite_pragmas)
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The engine, resolved on first use: a host's Flask-SQLAlchemy makes its engines in
        ``init_app``, which may come after jobcast's."""
        if self._engine is None:
            self._engine = self._source()  # type: ignore[operator]
        return self._engine

    def _new_session(self) -> Session:
        if self._factory.kw.get("bind") is None:
            self._factory.configure(bind=self.engine)
        return self._factory()

    def on_begin(self, listener: Callable[..., None]) -> None:
        """Run ``listener`` when one of jobcast's sessions begins a transaction."""
        event.listen(self._factory, "after_begin", listener)

    def remove(self, _exc: BaseException | None = None) -> None:
        """End this app context's session (``teardown_appcontext``)."""
        self.session.remove()


def _app_context_id() -> int:
    return id(app_ctx._get_current_object())  # type: ignore[attr-defined]


class _CurrentDatabase:
    """``db.session`` / ``db.engine`` of the app in context."""

    @property
    def database(self) -> Database:
        database: Database = current_app.extensions["jobcast"].database
        return database

    @property
    def session(self) -> scoped_session[Session]:
        return self.database.session

    @property
    def engine(self) -> Engine:
        return self.database.engine


db = _CurrentDatabase()


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the web process read while a worker writes; foreign keys are off by default."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
