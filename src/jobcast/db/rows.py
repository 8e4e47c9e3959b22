"""Hot-path statements: built once, run on the session's connection, their rows made ORM objects.

A submit, a job start and a job's end each run a few statements thousands of times a minute.
Through the ORM each call builds its statement, keys it for the compiled-SQL cache and flushes
through the unit of work; that was most of the CPU of a no-op job and of a submit. A statement
object built once at import keeps its cache key (SQLAlchemy memoizes it), and running it on the
session's connection keeps it in the session's transaction. ``adopt`` and ``write`` keep the
ORM objects the rest of the code uses in step with what these statements did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Table, Update, bindparam, inspect, update
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached, scoped_session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class

T = TypeVar("T")
AnySession = Session | scoped_session[Any]


def row_update(table: Table, *columns: str) -> Update:
    """An UPDATE of the row whose ``id`` is the parameter ``row_id``, setting each of ``columns``
    from the parameter ``new_<column>`` (a bound parameter may not share a column's name)."""
    return (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({c: bindparam(f"new_{c}", type_=table.c[c].type) for c in columns})
    )


def row_params(obj: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a ``row_update`` statement that sets ``values`` on ``obj``'s row."""
    return {"row_id": obj.id, **{f"new_{c}": v for c, v in values.items()}}


def written(obj: Any, values: Mapping[str, Any]) -> None:
    """Make ``values`` the object's committed state, so the next flush does not write them."""
    for column, value in values.items():
        set_committed_value(obj, column, value)


def write(session: AnySession, obj: Any, statement: Update, **values: Any) -> None:
    """Run a ``row_update`` statement for ``obj``'s row in the session's transaction, and make
    ``values`` the object's committed state."""
    session.connection().execute(statement, row_params(obj, values))
    written(obj, values)


def adopt(session: AnySession, model: type[T], row: Mapping[Any, Any]) -> T:
    """The session's persistent ``model`` object for a whole row read or written by Core, as if
    the ORM had loaded it (attribute names must be the column names).

    Built as the ORM's loader builds one: a bare instance whose ``__dict__`` takes the row. The
    constructor's per-attribute set events cost three times as much, for history that
    ``make_transient_to_detached`` discards anyway. Unlike the constructor, a bare instance does
    not configure the mappers, so this does when they are not yet (a worker's first job).
    """
    if not inspect(model).configured:
        configure_mappers()
    obj = manager_of_class(model).new_instance()
    obj.__dict__.update(row)
    make_transient_to_detached(obj)
    if inspect(obj).key in session.identity_map:
        return session.merge(obj, load=False)  # the session's own object, now with this row
    session.add(obj)
    return obj
