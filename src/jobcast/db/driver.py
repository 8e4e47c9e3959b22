"""Prebuilt statements run straight on a pooled driver connection: a submit's INSERT, a worker's
job start and end.

A no-op job's two one-row UPDATEs took ~0.4 ms of worker CPU through the Session and Core
(transaction bookkeeping, an execution context, per-call parameter and row processing) for
~0.05 ms of work in the driver. A ``DriverStatement`` is compiled by SQLAlchemy once per dialect,
and its parameters and rows are converted by the columns' own types, so the SQL and the values
are the ones Core would send and return; only the per-call machinery is skipped. Each run is one
transaction of its own, committed before ``run`` returns. Driver errors are raised as
SQLAlchemy's (``DBAPIError``), and a connection lost mid-call is invalidated, as Core does.
An engine that is watched (echo, or listeners for cursor execution: SQL tracing, query
recording) runs them through Core instead, so nothing it expects to see goes around it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    construct: Callable[..., MutableMapping[str, Any]]
    positions: Sequence[str] | None  # bind names in order, for positional drivers
    processors: dict[str, Callable[[Any], Any]]


class DriverStatement:
    """An INSERT/UPDATE/DELETE (optionally with RETURNING) built once and run on the driver."""

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self.columns = [str(column.key) for column in statement.exported_columns]
        self._types = [column.type for column in statement.exported_columns]
        self._compiled: WeakKeyDictionary[Dialect, _Compiled] = WeakKeyDictionary()
        self._results: WeakKeyDictionary[Dialect, list[Processor]] = WeakKeyDictionary()

    def run(self, engine: Engine, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Execute and commit; the first returned row by column key (None without one)."""
        if _watched(engine):
            return self._run_on_core(engine, params)
        dialect = engine.dialect
        compiled = self._compiled.get(dialect) or self._compile(dialect)
        values = compiled.construct(params)
        for name, process in compiled.processors.items():
            values[name] = process(values[name])
        args: Any = values
        if compiled.positions is not None:
            args = [values[name] for name in compiled.positions]
        dbapi_error = dialect.loaded_dbapi.Error
        raw = cursor = None
        try:
            raw = engine.raw_connection()
            cursor = raw.cursor()
            cursor.execute(compiled.sql, args)
            row = cursor.fetchone() if self.columns else None
            description = cursor.description
            cursor.close()
            raw.commit()
        except dbapi_error as exc:
            lost = raw is not None and dialect.is_disconnect(exc, raw.dbapi_connection, cursor)
            if lost and raw is not None:
                raw.invalidate(exc)
            raise DBAPIError.instance(
                compiled.sql, args, exc, dbapi_error, connection_invalidated=lost, dialect=dialect
            ) from exc
        finally:
            if raw is not None:
                raw.close()  # back to the pool, which rolls back anything left uncommitted
        if row is None:
            return None
        results = self._results.get(dialect) or self._result_processors(dialect, description)
        return {
            column: value if process is None else process(value)
            for column, process, value in zip(self.columns, results, row, strict=True)
        }

    def _run_on_core(self, engine: Engine, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """What ``run`` does, through Core: an engine someone watches sees every statement."""
        with engine.begin() as connection:
            result = connection.execute(self.statement, dict(params))
            row = result.first() if self.columns else None
        return None if row is None else dict(zip(self.columns, row, strict=True))

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            # Expanding IN and friends are rendered per call by Core, which this skips.
            raise ValueError("a DriverStatement takes no expanding or literal_execute parameters")
        processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        entry = _Compiled(
            sql=compiled.string,
            construct=compiled.construct_params,
            positions=list(compiled.positiontup or ()) if dialect.positional else None,
            processors=processors,
        )
        self._compiled[dialect] = entry
        return entry

    def _result_processors(self, dialect: Dialect, description: Any) -> list[Processor]:
        # Some dialects choose a row's conversion by the driver's type code (PostgreSQL's
        # numbers), so these are built from the first result's description.
        results: list[Processor] = [
            type_.dialect_impl(dialect).result_processor(dialect, entry[1])
            for type_, entry in zip(self._types, description, strict=True)
        ]
        self._results[dialect] = results
        return results


def _watched(engine: Engine) -> bool:
    """Echo on, or a cursor-execute listener (SQL tracing, Flask-SQLAlchemy's query recording):
    whoever set it up expects to see these statements too, so they go through Core."""
    dispatch = engine.dispatch
    return bool(engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute)
