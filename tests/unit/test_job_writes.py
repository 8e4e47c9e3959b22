"""Job rows have one writer: among jobcast's modules only ``jobcast/jobs/store.py`` commits
jobcast's session or runs an INSERT, UPDATE or DELETE of the jobs table.

There each change is committed before its event is published; a write anywhere else could be
announced before it is committed, or commit a half-made change along with its own. The rule is
read from the source, so it needs no database. Left out: the service's wing
(``jobcast/service/``), whose tables are its own, and schema migrations, which run under Alembic
before any job does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "jobcast"
STORE = SRC / "jobs" / "store.py"

#: How jobcast's code names the jobs table: the model and its table (``jobcast.db.tables``).
JOBS_TABLE = frozenset({"Job", "JOBS"})
JOBS_TABLE_NAME = "jobcast_jobs"
#: The ``db`` whose session is jobcast's; a ``db`` imported from elsewhere (a host's or the
#: service's Flask-SQLAlchemy) commits tables of its own.
JOBCAST_DB = "jobcast.db.database"
STATEMENTS = frozenset({"insert", "update", "delete", "row_update"})


def job_writes(source: str) -> list[str]:
    """Each place in ``source`` that writes job rows or commits jobcast's session."""
    tree = ast.parse(source)
    tables = _table_names(tree)
    other_dbs = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != JOBCAST_DB
        for alias in node.names
        if alias.name == "db"
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (what := _write(node, tables, other_dbs)):
            found.append(f"line {node.lineno}: {what}: {ast.unparse(node)[:80]}")
    return found


def _write(call: ast.Call, tables: set[str], other_dbs: set[str]) -> str | None:
    """What ``call`` writes, if it writes job rows or commits jobcast's session."""
    func, args = call.func, call.args
    receiver = func.value if isinstance(func, ast.Attribute) else None
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in ("commit", "delete") and receiver is not None and _session(receiver, other_dbs):
        return f"a session {name}"
    if name == "run" and any(ast.unparse(a).endswith("engine") for a in args):
        return "a driver statement"  # a DriverStatement runs and commits on its own
    if name == "write" and receiver is not None and ast.unparse(receiver) == "rows":
        return "a row write"  # rows.write: an UPDATE in the session's transaction
    if name in STATEMENTS and args and _names_table(args[0], tables):
        return f"{name}() of the jobs table"
    return None


def _table_names(tree: ast.AST) -> set[str]:
    """The names the jobs table goes by in a module, with its aliases (``_jobs = JOBS``) and
    tables built by its name (``table("jobcast_jobs", ...)``)."""
    names = set(JOBS_TABLE)
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)]
    while True:
        more = {
            target.id
            for node in assigns
            if _names_table(node.value, names) or _builds_table(node.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        if more <= names:
            return names
        names |= more


def _names_table(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "__table__":
        node = node.value
    return isinstance(node, ast.Name) and node.id in names


def _builds_table(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and ast.unparse(node.func).split(".")[-1].lower() == "table"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == JOBS_TABLE_NAME
    )


def _session(node: ast.expr, other_dbs: set[str]) -> bool:
    """Whether ``node`` is a session (``db.session``, ``db.session()``, ``session``) that may
    be jobcast's."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id.endswith("session")
    if not isinstance(node, ast.Attribute) or node.attr != "session":
        return False
    root = node.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return not (isinstance(root, ast.Name) and root.id in other_dbs)


def _modules() -> list[Path]:
    return sorted(
        path
        for path in SRC.rglob("*.py")
        if "service" not in path.relative_to(SRC).parts[:1]
        and "migrations" not in path.relative_to(SRC).parts
    )


def test_only_the_store_writes_job_rows() -> None:
    elsewhere = {
        str(path.relative_to(SRC.parent)): writes
        for path in _modules()
        if path != STORE and (writes := job_writes(path.read_text()))
    }
    assert elsewhere == {}, "job rows are written by jobcast/jobs/store.py alone"


def test_the_store_is_where_they_are_written() -> None:
    """The rule reads the store's writes, so a checker that sees nothing fails here first."""
    writes = "\n".join(job_writes(STORE.read_text()))
    for what in ("a session commit", "a driver statement", "a row write", "update() of the jobs"):
        assert what in writes


@pytest.mark.parametrize(
    "source",
    [
        "from jobcast.db.database import db\ndb.session.commit()",
        "db.session().commit()",
        "session.commit()",
        "db.session.delete(job)",
        "_START.run(db.engine, {})",
        "rows.write(db.session, job, _PROGRESS, progress=1.0)",
        "update(Job).values(status='x')",
        "sa.insert(JOBS)",
        "_jobs = JOBS\nq = update(_jobs)",
        "delete(Job.__table__)",
        "t = sa.table('jobcast_jobs')\nop.execute(sa.delete(t))",
    ],
)
def test_a_job_write_is_seen(source: str) -> None:
    assert job_writes(source)


@pytest.mark.parametrize(
    "source",
    [
        # the service's own database
        "from jobcast.service.extensions import db\ndb.session.commit()",
        "rt.storage.commit(owner, job_id, path)",
        "raw.commit()",  # the driver's own connection, under a DriverStatement
        "update(users).values(name='x')",
        "redis.delete(key)",
        "db.session.scalars(select(Job))",
    ],
)
def test_other_work_is_not_a_job_write(source: str) -> None:
    assert job_writes(source) == []
