"""One trace from the submit request to the worker's job span, across real processes.

A stack of its own (Redis, web, gevent and prefork workers) exports its spans over OTLP/HTTP
to a receiver in this test, and writes JSON logs; a second stack, with no exporter named,
shows that tracing is off by default.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from jobcast.service.testing import LocalStack
from tests.integration.support import Api

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Span:
    name: str
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[tuple[str, str], ...]
    attributes: dict[str, Any] = field(hash=False)


class Receiver(ThreadingHTTPServer):
    """A tiny OTLP/HTTP trace receiver: ``POST /v1/traces``, protobuf."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, what: Callable[[list[Span]], bool], timeout: float = 20) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                spans = list(self.spans)
            if what(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s.name for s in spans})
                raise AssertionError(f"spans not received after {timeout} s; got {names}")
            time.sleep(0.1)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                spans.extend(_span(s, resource["service.name"]) for s in scope_spans.spans)
        with self.server.lock:
            self.server.spans.extend(spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_: Any) -> None:
        pass


def _span(span: Any, service: str) -> Span:
    attributes = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        attributes[kv.key] = getattr(kv.value, kind) if kind else None
    return Span(
        name=span.name,
        service=service,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
        attributes=attributes,
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _overrides(**extra: str) -> dict[str, str]:
    return {
        "JOBCAST_JOB_MODULES": "jobcast.service.builtin,tests.integration.jobs",
        "JOBCAST_IO_CONCURRENCY": "5",
        "JOBCAST_CPU_CONCURRENCY": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


@pytest.fixture(scope="module")
def traced(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack that exports every span to ``receiver`` and logs JSON."""
    overrides = _overrides(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        JOBCAST_LOG_FORMAT="json",
    )
    with LocalStack(tmp_path_factory.mktemp("traced"), env_overrides=overrides) as stack:
        yield stack


def events_of(api: Api, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The job's recorded events, from its SSE stream (which ends after the terminal one)."""
    events = []
    name = ""
    with api.get(f"/api/v1/jobs/{job_id}/events", stream=True) as response:
        assert response.status_code == 200
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def of_job(spans: list[Span], name: str, job_id: str) -> list[Span]:
    return [s for s in spans if s.name == name and s.attributes.get("job.id") == job_id]


def below(spans: list[Span], top: Span) -> set[str]:
    """The names of the spans under ``top`` (children, theirs, ...)."""
    children: dict[str, list[Span]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    found, todo = set(), [top.span_id]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child.name)
            todo.append(child.span_id)
    return found


@pytest.mark.parametrize(
    ("job_type", "params"),
    [("test.file", {"text": "traced"}), ("export.csv", {})],
    ids=["gevent-pool", "prefork-pool"],
)
def test_one_trace_runs_from_the_submit_request_to_the_workers_job_span(
    traced: LocalStack, receiver: Receiver, job_type: str, params: dict[str, Any]
) -> None:
    api = Api(traced.base_url).signup()
    submitted = api.submit(job_type, params)
    job = api.wait_job(submitted["id"])
    assert job["status"] == "succeeded", job
    job_id = job["id"]

    spans = receiver.wait_for(
        lambda s: (
            bool(of_job(s, f"jobcast.job {job_type}", job_id))
            and bool(of_job(s, "jobcast.result.store", job_id))
        )
    )
    [submit] = of_job(spans, "jobcast.submit", job_id)
    [attempt] = of_job(spans, f"jobcast.job {job_type}", job_id)
    assert (submit.service, attempt.service) == ("jobcast-web", "jobcast-worker")
    assert attempt.trace_id == submit.trace_id
    assert attempt.parent_id == submit.span_id
    assert (submit.trace_id, submit.span_id) in attempt.links
    assert attempt.attributes["job.type"] == job_type
    assert attempt.attributes["job.attempt"] == 1
    # The submit is a child of the request's span (Flask's instrumentation).
    request = next(s for s in spans if s.span_id == submit.parent_id)
    assert request.service == "jobcast-web" and request.trace_id == submit.trace_id

    assert submitted["trace_id"] == job["trace_id"] == submit.trace_id
    events = events_of(api, job_id)
    assert [name for name, _ in events][-1] == "job.succeeded"
    assert {payload["trace_id"] for _, payload in events} == {submit.trace_id}

    assert {"jobcast.db.insert", "jobcast.publish job.queued"} <= below(spans, submit)
    assert {
        "jobcast.db.start",
        "jobcast.publish job.started",
        "jobcast.result.store",
        "jobcast.db.save",
        "jobcast.publish job.succeeded",
    } <= below(spans, attempt)


def test_a_retried_jobs_attempts_are_all_in_the_submits_trace(
    traced: LocalStack, receiver: Receiver
) -> None:
    api = Api(traced.base_url).signup()
    job = api.wait_job(api.submit("test.flaky", {"failures": 1})["id"])
    assert (job["status"], job["attempts"]) == ("succeeded", 2)

    spans = receiver.wait_for(lambda s: len(of_job(s, "jobcast.job test.flaky", job["id"])) == 2)
    [submit] = of_job(spans, "jobcast.submit", job["id"])
    attempts = sorted(
        of_job(spans, "jobcast.job test.flaky", job["id"]),
        key=lambda s: s.attributes["job.attempt"],
    )
    assert [a.attributes["job.attempt"] for a in attempts] == [1, 2]
    for attempt in attempts:
        assert attempt.trace_id == submit.trace_id == job["trace_id"]
        assert attempt.parent_id == submit.span_id
        assert (submit.trace_id, submit.span_id) in attempt.links
    assert "jobcast.publish job.retrying" in below(spans, attempts[0])


def test_worker_log_lines_are_json_with_the_jobs_ids(traced: LocalStack) -> None:
    api = Api(traced.base_url).signup()
    job = api.wait_job(api.submit("test.file", {"text": "logged"})["id"])
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in (traced.logs / "worker-all.log").read_text().splitlines()
            if line.startswith("{") and job["id"] in line
        ]
        if any("succeeded" in line["message"] for line in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lines, "no JSON line about the job in the worker's log"
    about_the_job = [line for line in lines if line["job_id"] == job["id"]]
    assert any(line["logger"] == "jobcast.jobs.tasks" for line in about_the_job)
    for line in about_the_job:
        assert {"timestamp", "level", "logger", "message"} <= line.keys()
        assert line["trace_id"] == job["trace_id"]
        assert line["request_id"] == job_request_id(lines)
        assert line["job_type"] == "test.file"
    started = next(line for line in about_the_job if "started" in line["message"])
    assert started["owner"] is not None and started["span_id"]


def job_request_id(lines: list[dict[str, Any]]) -> str:
    ids = {line["request_id"] for line in lines}
    assert len(ids) == 1 and None not in ids, ids
    return str(ids.pop())


def test_without_an_exporter_named_tracing_is_off(tmp_path: Path, receiver: Receiver) -> None:
    before = len(receiver.spans)
    # The endpoint alone turns nothing on: no exporter is named.
    overrides = _overrides(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_TRACES_EXPORTER="")
    with LocalStack(tmp_path, env_overrides=overrides, worker_pools=("io",)) as stack:
        api = Api(stack.base_url).signup()
        job = api.wait_job(api.submit("test.file", {"text": "untraced"})["id"])
        assert job["status"] == "succeeded" and job["trace_id"] is None
        assert {payload["trace_id"] for _, payload in events_of(api, job["id"])} == {None}
        time.sleep(0.5)  # past the traced stack's batch delay
    assert not [s for s in receiver.spans[before:] if s.attributes.get("job.id") == job["id"]]
