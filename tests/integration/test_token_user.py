"""The submit's user: proven by its insert, not loaded first; a token whose user is gone fails.

Every other view loads the token's user before it runs and refuses an unknown one. The submit
skips that SELECT (``user_from_token``): the jobs' foreign key refuses the insert instead, and
the answer must be the same 401, with nothing written or queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, event, func, select

from jobcast.auth.models import User
from jobcast.auth.tokens import issue_tokens
from jobcast.extensions import db
from jobcast.jobs.models import Job
from tests.integration.support import Api

SUBMISSION = {"type": "demo.steps", "params": {"steps": 1, "step_ms": 0}}


@pytest.fixture
def gone_user(api: Api, server_app: Flask) -> Iterator[tuple[Api, int]]:
    """A signed-in client whose user row has since been deleted, and that user's id."""
    with server_app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == api.email))
        assert user_id is not None
        db.session.execute(delete(User).where(User.id == user_id))
        db.session.commit()
    yield api, user_id


def _jobs_of(server_app: Flask, user_id: int) -> int:
    with server_app.app_context():
        return db.session.scalar(select(func.count()).where(Job.owner_id == user_id)) or 0


def test_a_submit_for_a_deleted_user_is_401_and_writes_nothing(
    gone_user: tuple[Api, int], server_app: Flask
) -> None:
    api, user_id = gone_user
    response = api.post("/api/v1/jobs", json=SUBMISSION)
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == "unknown user"
    assert _jobs_of(server_app, user_id) == 0


def test_a_submit_with_a_key_for_a_deleted_user_is_401(
    gone_user: tuple[Api, int], server_app: Flask
) -> None:
    api, user_id = gone_user
    response = api.post("/api/v1/jobs", json=SUBMISSION, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "unknown user"
    assert _jobs_of(server_app, user_id) == 0


def test_a_bad_submit_for_a_deleted_user_is_401_not_its_error(gone_user: tuple[Api, int]) -> None:
    # Without the user check these would be 422 (listing the job types) and 400.
    api, _ = gone_user
    unknown_type = api.post("/api/v1/jobs", json={"type": "no.such", "params": {}})
    not_json = api.post("/api/v1/jobs", data=b"{", headers={"Content-Type": "application/json"})
    for response in (unknown_type, not_json):
        assert response.status_code == 401, response.text
        assert response.json()["detail"] == "unknown user"


def test_reads_for_a_deleted_user_are_401(gone_user: tuple[Api, int]) -> None:
    api, _ = gone_user
    for path in ("/api/v1/jobs", "/api/v1/me"):
        response = api.get(path)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["detail"] == "unknown user"


def test_a_submit_runs_no_select_of_its_user(api: Api, server_app: Flask) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    with server_app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == api.email))
        assert user_id is not None
        token = issue_tokens(user_id)["access_token"]
        engine = db.engine
    client = server_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.post("/api/v1/jobs", json=SUBMISSION, headers=headers)
        listed = client.get("/api/v1/jobs", headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 202, response.text
    assert listed.status_code == 200
    from_users = [s for s in statements if s.startswith("select") and "from users" in s]
    # The listing loads its user; the submit before it did not.
    assert len(from_users) == 1, statements
    assert statements.index(from_users[0]) > next(
        i for i, s in enumerate(statements) if s.startswith("insert into jobs")
    )
