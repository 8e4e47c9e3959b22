"""``rows.adopt``: a Core row made the session's persistent object, as the ORM would load it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from jobcast.db import rows
from jobcast.db.tables import Job

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def _row(job_id: str, **changes: Any) -> dict[str, Any]:
    row = {column.key: None for column in Job.__table__.columns}
    row.update(id=job_id, owner_id="1", type="demo.steps", params={}, status="queued")
    row.update(progress=0.0, attempts=0, celery_task_id=job_id, created_at=NOW, updated_at=NOW)
    return {**row, **changes}


def test_an_adopted_row_is_persistent_clean_and_complete() -> None:
    with Session(create_engine("sqlite://")) as session:
        job = rows.adopt(session, Job, _row("j-1", status="running", attempts=2))
        state = inspect(job)
        assert state.persistent and state.identity == ("j-1",)
        assert (job.status, job.attempts, job.created_at) == ("running", 2, NOW)
        assert not session.dirty and not state.unloaded
        assert state.attrs.status.history.unchanged == ["running"]


def test_adopting_a_row_already_held_updates_the_held_object() -> None:
    with Session(create_engine("sqlite://")) as session:
        held = rows.adopt(session, Job, _row("j-1"))
        again = rows.adopt(session, Job, _row("j-1", status="succeeded", progress=100.0))
        assert again is held
        assert (held.status, held.progress) == ("succeeded", 100.0)
        assert not session.dirty


def test_adopt_works_before_anything_configured_the_mappers() -> None:
    # A worker's first job adopts its row before any query has configured the mappers; the
    # bare instance adopt builds must configure them itself. A fresh interpreter shows it.
    code = textwrap.dedent(
        """
        from sqlalchemy import create_engine, inspect
        from sqlalchemy.orm import Session
        from jobcast.db import rows
        from jobcast.db.tables import Job
        from tests.unit.test_rows import _row
        assert not inspect(Job).configured
        job = rows.adopt(Session(create_engine("sqlite://")), Job, _row("j-1"))
        assert inspect(job).persistent and job.status == "queued", job
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
