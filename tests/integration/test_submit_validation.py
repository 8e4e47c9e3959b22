"""A job the server knows at submit it will not run is refused then, and nothing is written.

Params can be valid and the job still sure to fail: a recipient ``JOBCAST_EMAIL_RECIPIENTS``
does not allow, a loop longer than its time limit. Each job type's ``check`` answers that at
submit with the 422 of invalid params (field named), before a job row, an event or a broker
message exists. The job keeps its own check for settings changed between submit and run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select

from jobcast.db.tables import Job
from jobcast.errors import JobError, ParamsRefused
from jobcast.service.auth.models import User
from jobcast.service.builtin.mailer import EmailParams, check_recipient
from jobcast.service.extensions import db
from tests.integration.conftest import Stack
from tests.integration.support import Api, assert_problem

EMAIL = {"subject": "s", "body": "b"}


def job_rows(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Job)) or 0


@pytest.fixture
def nothing_written(stack: Stack, server_app: Flask) -> Iterator[None]:
    """The test's refusals leave no job row and no job key in Redis behind (on this stack the
    broker message is pushed by the script that numbers the job's first event: no event, no
    message)."""
    redis = Redis.from_url(stack.env["JOBCAST_REDIS_URL"])
    rows, keys = job_rows(server_app), set(redis.scan_iter("jobcast:job:*"))
    yield
    assert job_rows(server_app) == rows
    assert set(redis.scan_iter("jobcast:job:*")) <= keys


def refused(api: Api, job_type: str, params: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = api.post("/api/v1/jobs", json={"type": job_type, "params": params}, headers=headers)
    return assert_problem(response, 422)


@pytest.mark.usefixtures("nothing_written")
def test_mail_to_a_domain_the_server_does_not_mail_is_a_422_naming_the_setting(
    api: Api, smtp: Any
) -> None:
    _port, inbox = smtp
    sent = len(inbox.messages)

    body = refused(api, "email.send", {**EMAIL, "to": "victim@elsewhere.org"})

    assert body["type"] == "https://jobcast.dev/problems/validation"
    assert "JOBCAST_EMAIL_RECIPIENTS" in body["detail"]
    assert "victim@elsewhere.org" in body["detail"]
    (error,) = body["errors"]
    assert error["field"] == "params.to" and error["type"] == "recipient_not_allowed"
    assert "victim@elsewhere.org" in error["message"]
    assert api.get("/api/v1/jobs").json()["items"] == []
    assert len(inbox.messages) == sent


def test_a_refusal_with_an_idempotency_key_leaves_the_key_free(api: Api) -> None:
    refused(api, "email.send", {**EMAIL, "to": "x@elsewhere.org"}, **{"Idempotency-Key": "k1"})
    response = api.post(
        "/api/v1/jobs",
        json={"type": "demo.steps", "params": {"steps": 1, "step_ms": 0}},
        headers={"Idempotency-Key": "k1"},
    )
    assert response.status_code == 202, response.text
    assert [j["type"] for j in api.get("/api/v1/jobs").json()["items"]] == ["demo.steps"]
    api.wait_job(response.json()["id"])


def test_mail_to_an_allowed_domain_is_accepted(api: Api, smtp: Any) -> None:
    # The stack allows example.com (JOBCAST_EMAIL_RECIPIENTS), the domain of every test user.
    job = api.wait_job(api.submit("email.send", {**EMAIL, "to": "friend@example.com"})["id"])
    assert job["status"] == "succeeded", job


@pytest.mark.usefixtures("nothing_written")
def test_invalid_params_are_reported_before_the_check_runs(api: Api) -> None:
    body = refused(api, "email.send", {**EMAIL, "to": "victim@elsewhere.org", "cc": "x"})
    assert [e["field"] for e in body["errors"]] == ["params.cc"]


@pytest.mark.usefixtures("nothing_written")
def test_a_loop_longer_than_the_time_limit_is_a_422(api: Api) -> None:
    body = refused(api, "demo.steps", {"steps": 10_000, "step_ms": 60_000})
    (error,) = body["errors"]
    assert error["field"] == "params" and error["type"] == "time_limit"
    assert "3600 s" in body["detail"]
    assert api.get("/api/v1/jobs").json()["items"] == []


def test_the_job_checks_the_recipient_again_with_the_settings_it_runs_with(
    stack: Stack, api: Api
) -> None:
    """Settings can change between submit and run: the job refuses with its run's settings."""
    for allowed, ok in (("example.com", True), ("", False)):
        app = stack.app(email_recipients=allowed)
        with app.app_context():
            owner = db.session.scalar(select(User).where(User.email == api.email))
            assert owner is not None
            params = EmailParams(to="friend@example.com", subject="s", body="b")
            if ok:
                check_recipient(params, owner.id)
                continue
            with pytest.raises(ParamsRefused) as caught:
                check_recipient(params, owner.id)
            assert isinstance(caught.value, JobError)
            assert caught.value.code == "recipient_not_allowed"
            assert "JOBCAST_EMAIL_RECIPIENTS" in str(caught.value)
