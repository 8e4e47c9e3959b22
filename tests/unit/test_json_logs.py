"""JOBCAST_LOG_FORMAT=json: one JSON object per line, with the ids of the request, the job and
the trace on every record about a job; plain lines stay as they were."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from jobcast.logs import JobTags, configure_logging, correlated, remember_job

JOB_ID = "0313a106-c6b1-4703-9552-3dae15245a59"


@pytest.fixture
def output() -> Iterator[Any]:
    """Configure logging (as the service does), a style at a time; yields ``use(style)``,
    which returns the stream the root's handler writes to."""
    root = logging.getLogger()
    level = root.level
    earlier = [h for h in root.handlers if getattr(h, "jobcast", False)]  # another test's app
    for handler in earlier:
        root.removeHandler(handler)
    before = list(root.handlers)
    stream = io.StringIO()

    def use(style: str) -> io.StringIO:
        configure_logging("INFO", style)  # type: ignore[arg-type]
        [handler] = [h for h in root.handlers if h not in before]
        handler.setStream(stream)  # type: ignore[attr-defined]
        return stream

    yield use
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
    for handler in earlier:
        root.addHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_about_a_job_is_one_json_object_with_every_id(output: Any) -> None:
    stream = output("json")
    tracer = TracerProvider().get_tracer("test")
    with (
        correlated(request_id="req-1", job_id=JOB_ID, job_type="report.xlsx", owner="42"),
        tracer.start_as_current_span("job") as span,
    ):
        logging.getLogger("jobcast.jobs.tasks").info("job %s started", JOB_ID)
    [line] = lines(stream)
    context = span.get_span_context()
    assert line == {
        "timestamp": line["timestamp"],
        "level": "INFO",
        "logger": "jobcast.jobs.tasks",
        "message": f"job {JOB_ID} started",
        "request_id": "req-1",
        "job_id": JOB_ID,
        "job_type": "report.xlsx",
        "owner": "42",
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }
    assert line["timestamp"].endswith("+00:00")


def test_a_record_about_nothing_has_null_ids_and_an_exception_as_text(output: Any) -> None:
    stream = output("json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    [line] = lines(stream)
    assert line["level"] == "ERROR" and line["message"] == "failed"
    assert [line[k] for k in ("request_id", "job_id", "job_type", "owner", "trace_id")] == [
        None
    ] * 5
    assert "ValueError: boom" in line["exc_info"]


def test_celerys_lines_outside_the_task_carry_what_the_worker_remembered(output: Any) -> None:
    stream = output("json")
    remember_job(JOB_ID, JobTags("req-2", "test.file", "7", "ab" * 16))
    logging.getLogger("celery.worker.strategy").info(
        "Task received", extra={"data": {"id": JOB_ID, "name": "test.file"}}
    )
    [line] = lines(stream)
    assert (line["request_id"], line["job_id"], line["job_type"]) == ("req-2", JOB_ID, "test.file")
    assert (line["owner"], line["trace_id"]) == ("7", "ab" * 16)


def test_plain_lines_stay_as_they_were(output: Any) -> None:
    stream = output("json")
    stream = output("plain")  # a second create_app with another style changes the one handler
    with correlated(request_id="req-3", job_id=JOB_ID):
        logging.getLogger("jobcast").warning("hello")
    logging.getLogger("jobcast").warning("bye")
    first, second = stream.getvalue().splitlines()
    assert first.endswith(f"WARNING jobcast [req=req-3 job={JOB_ID}] hello")
    assert second.endswith("WARNING jobcast [req=- job=-] bye")
