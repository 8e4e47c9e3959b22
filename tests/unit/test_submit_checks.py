"""A job type's ``check``: what the server knows at submit refuses the job there.

A ParamsRefused becomes the 422 of invalid params, naming the field; any other ApiError is
answered as it is (the server's own trouble, such as a workbook engine that is not installed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydantic import BaseModel

import jobcast.service.builtin  # noqa: F401  (registers the built-in job types)
from jobcast import create_app
from jobcast.errors import JobError, ParamsRefused, ServiceUnavailable, ValidationFailed
from jobcast.jobs.registry import Registry, job, registry
from jobcast.service.builtin import exports
from jobcast.service.builtin.demo import StepsParams
from jobcast.service.builtin.exports import ExportParams


class Mail(BaseModel):
    to: str


def refuse_elsewhere(params: Mail, owner_id: int) -> None:
    if not params.to.endswith("@example.com"):
        raise ParamsRefused(f"not to {params.to}", field="to", code="recipient_not_allowed")


def made(check: Any) -> Registry:
    into = Registry()
    job("mail", params=Mail, check=check, into=into)(lambda ctx: None)
    return into


def test_a_refusal_is_the_422_of_invalid_params_naming_the_field() -> None:
    job_type = made(refuse_elsewhere).types["mail"]
    with pytest.raises(ValidationFailed) as caught:
        job_type.check_submit(job_type.validate({"to": "x@elsewhere.org"}), owner_id="1")
    assert caught.value.status == 422
    assert caught.value.detail == "not to x@elsewhere.org"
    assert caught.value.errors == [
        {"field": "params.to", "message": "not to x@elsewhere.org", "type": "recipient_not_allowed"}
    ]


def test_an_accepted_job_and_a_type_without_check_pass() -> None:
    made(refuse_elsewhere).types["mail"].check_submit(Mail(to="a@example.com"), owner_id="1")
    made(None).types["mail"].check_submit(Mail(to="x@elsewhere.org"), owner_id="1")


def test_a_refusal_raised_by_the_job_itself_fails_it_with_its_code() -> None:
    """The same check, called by the job at run time, is a JobError: the job fails."""
    with pytest.raises(JobError) as caught:
        refuse_elsewhere(Mail(to="x@elsewhere.org"), owner_id="1")
    assert caught.value.code == "recipient_not_allowed"


def test_a_refusal_of_the_whole_params_names_params() -> None:
    def whole(params: Mail, owner_id: int) -> None:
        raise ParamsRefused("no")

    with pytest.raises(ValidationFailed) as caught:
        made(whole).types["mail"].check_submit(Mail(to="a@example.com"), owner_id="1")
    assert caught.value.errors == [{"field": "params", "message": "no", "type": "refused"}]


@pytest.mark.parametrize(
    ("steps", "step_ms", "ok"),
    [(10, 100, True), (10_000, 359, True), (10_000, 360, False), (10_000, 60_000, False)],
)
def test_demo_steps_refuses_a_loop_as_long_as_its_time_limit(
    steps: int, step_ms: int, ok: bool
) -> None:
    job_type = registry.types["demo.steps"]
    params = StepsParams(steps=steps, step_ms=step_ms)
    if ok:
        job_type.check_submit(params, owner_id="1")
        return
    with pytest.raises(ValidationFailed, match="time limit of 3600 s"):
        job_type.check_submit(params, owner_id="1")


@pytest.fixture
def rust_engine_app(tmp_path: Path) -> Flask:
    return create_app(
        {
            "env": "testing",
            "database_url": f"sqlite:///{tmp_path / 'j.db'}",
            "xlsx_engine": "rustpy-xlsxwriter",
        }
    )


def test_export_xlsx_is_refused_when_its_engine_is_not_installed(
    rust_engine_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "_rust_installed", lambda: False)
    with rust_engine_app.app_context(), pytest.raises(ServiceUnavailable) as caught:
        registry.types["export.xlsx"].check_submit(ExportParams(), owner_id="1")
    assert "JOBCAST_XLSX_ENGINE" in caught.value.detail
    assert "pip install 'jobcast[fast-xlsx]'" in caught.value.detail


def test_export_xlsx_is_accepted_when_its_engine_is_installed(
    rust_engine_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "_rust_installed", lambda: True)
    with rust_engine_app.app_context():
        registry.types["export.xlsx"].check_submit(ExportParams(), owner_id="1")


def test_users_process_passes_on_sqlite(rust_engine_app: Flask) -> None:
    with rust_engine_app.app_context():
        registry.types["users.process"].check_submit(
            registry.types["users.process"].validate(None), owner_id=1
        )
