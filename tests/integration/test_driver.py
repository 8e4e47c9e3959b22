"""A submit's insert and a job's start and success statements on the driver (db.driver), on
the suite's database.

The values they write and return must be the ones Core would; a watched engine must see them;
a failing start must not keep its lease; a job function's unsaved work in the host's session
is never committed by jobcast.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Column, MetaData, String, Table, bindparam, event, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from jobcast.db.driver import DriverStatement
from jobcast.db.tables import Job
from jobcast.db.types import utcnow
from jobcast.jobs import lifecycle, service, states, store
from jobcast.runtime import current_runtime
from jobcast.service.auth.users import create_user
from jobcast.service.builtin.models import Order
from jobcast.service.extensions import db


@pytest.fixture
def ctx(server_app: Flask) -> Iterator[int]:
    """An app context over the stack's database and Redis, with a user of its own."""
    with server_app.app_context():
        yield create_user(f"driver-{uuid.uuid4().hex[:8]}@example.com", "correct horse 1").id


def _queued(owner_id: int) -> str:
    job = Job(id=str(uuid.uuid4()), owner_id=str(owner_id), type="demo.steps", params={"steps": 1})
    db.session.add(job)
    db.session.commit()
    return job.id


def _row(job_id: str) -> dict[str, Any]:
    return dict(db.session.execute(select(Job.__table__).where(Job.id == job_id)).one()._mapping)


def test_the_start_returns_and_stores_what_core_reads_back(ctx: int) -> None:
    job_id = _queued(ctx)
    returned = store._START.run(db.engine, {"job_id": job_id, "now": utcnow()})
    assert returned is not None
    stored = _row(job_id)
    assert returned == stored
    assert stored["status"] == states.RUNNING and stored["attempts"] == 1
    assert stored["started_at"].tzinfo is not None and stored["params"] == {"steps": 1}
    db.session.execute(update(Job).where(Job.id == job_id).values(status=states.CANCELLED))
    db.session.commit()
    again = store._START.run(db.engine, {"job_id": job_id, "now": utcnow()})
    assert again is None, "a cancelled job must not start"


def _submission(owner_id: int) -> dict[str, Any]:
    return service._new_row(owner_id, "demo.steps", {"steps": 1}, None, None, None)


def test_the_submit_insert_stores_what_the_model_would_and_returns_it(ctx: int) -> None:
    values = _submission(ctx)
    returned = store._INSERT_UNDER_CAP.run(db.engine, {**values, "cap": 10})
    assert returned is not None
    stored = _row(values["id"])
    assert returned == stored
    by_the_model = _row(_queued(ctx))  # the ORM, with the model's defaults
    same = {"status", "progress", "attempts", "message", "dispatched_at", "started_at", "error"}
    assert {c: stored[c] for c in same} == {c: by_the_model[c] for c in same}
    assert stored["created_at"] == values["created_at"] and stored["created_at"].tzinfo is not None


def test_the_submit_insert_writes_nothing_at_the_cap(ctx: int) -> None:
    _queued(ctx)
    values = _submission(ctx)
    assert store._INSERT_UNDER_CAP.run(db.engine, {**values, "cap": 1}) is None
    assert db.session.get(Job, values["id"]) is None


def test_a_watched_engine_sees_the_statements(ctx: int) -> None:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        job_id = _queued(ctx)
        seen.clear()
        returned = store._START.run(db.engine, {"job_id": job_id, "now": utcnow()})
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert [s.split()[0] for s in seen] == ["UPDATE"]
    assert returned == _row(job_id)


def test_a_driver_error_is_sqlalchemys(ctx: int) -> None:
    missing = Table("no_such_table", MetaData(), Column("id", String, primary_key=True))
    statement = DriverStatement(
        update(missing).where(missing.c.id == bindparam("row_id")).values(id="x")
    )
    with pytest.raises(DBAPIError):
        statement.run(db.engine, {"row_id": "y"})


def test_a_start_that_fails_frees_the_lease(ctx: int, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _queued(ctx)

    def unavailable(*_: Any) -> None:
        raise OperationalError("UPDATE jobs ...", {}, Exception("database is locked"))

    monkeypatch.setattr(store._START, "run", unavailable)
    with pytest.raises(OperationalError):
        lifecycle.start_attempt(job_id)
    assert not current_runtime().leases.held(job_id), "a later delivery would wait forever"


def test_success_never_commits_what_the_job_left_in_the_hosts_session(ctx: int) -> None:
    # jobcast's session is its own: the job function's work is the job function's to commit.
    started = lifecycle.start_attempt(_queued(ctx))
    assert started is not None
    job, lease = started
    db.session.add(
        Order(
            user_id=ctx,
            customer="c",
            region="eu",
            product="p",
            quantity=1,
            unit_price_cents=5,
            total_cents=5,
            status="paid",
        )
    )
    lifecycle.succeed(job, {"ok": True}, None)
    lease.let_lapse()
    db.session.remove()
    assert _row(job.id)["status"] == states.SUCCEEDED
    assert db.session.scalar(select(Order.customer).where(Order.user_id == ctx)) is None


def test_success_alone_writes_the_row_and_the_object(ctx: int) -> None:
    started = lifecycle.start_attempt(_queued(ctx))
    assert started is not None
    job, lease = started
    lifecycle.succeed(job, {"n": 3}, None)
    lease.let_lapse()
    assert (job.status, job.result, job.progress) == (states.SUCCEEDED, {"n": 3}, 100.0)
    db.session.remove()
    stored = _row(job.id)
    assert (stored["status"], stored["result"], stored["finished_at"]) == (
        states.SUCCEEDED,
        {"n": 3},
        job.finished_at,
    )
