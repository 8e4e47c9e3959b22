"""A token whose user is gone: every view, the submit included, refuses it with the same 401
and writes nothing (jobs name their owner as a string, with no foreign key to users, so the
service's identity loads the token's user before anything else).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from jobcast.db.tables import Job
from jobcast.service.auth.models import User
from jobcast.service.extensions import db
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
        return db.session.scalar(select(func.count()).where(Job.owner_id == str(user_id))) or 0


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
