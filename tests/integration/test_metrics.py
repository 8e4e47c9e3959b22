"""Prometheus metrics on the real stack: the web server's ``/metrics`` sums every process of the
machine (web and workers), so jobs run by a worker move the counters the web server shows."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from jobcast import create_app
from jobcast.jobs.registry import queue_names
from tests.integration.conftest import Stack
from tests.integration.support import Api, assert_problem

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

TOKEN = "scrape-token-0123456789abcdef"


def scrape(base_url: str) -> Samples:
    response = requests.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the metrics did not get there in time")
        time.sleep(0.2)


def _user_id(api: Api) -> str:
    payload = (api.token or "").split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return str(claims["sub"])


def _read_sse(response: requests.Response) -> list[str]:
    """The event names of a stream, until it ends."""
    return [
        line.removeprefix("event: ")
        for line in response.iter_lines(decode_unicode=True)
        if line.startswith("event: ")
    ]


def test_jobs_run_by_the_workers_move_their_types_metrics_in_the_webs_scrape(
    stack: Stack, api: Api, listener_factory: Any
) -> None:
    before = scrape(stack.base_url)
    ears = listener_factory(api.token)

    long = api.submit("demo.steps", {"steps": 100, "step_ms": 100})
    # Cancelled only once it has published progress: the progress count below needs its step.
    api.wait_job(long["id"], until=lambda j: j["status"] == "running" and j["progress"] > 0)
    with api.get(f"/api/v1/jobs/{long['id']}/events", stream=True) as stream:
        assert stream.status_code == 200
        during = scrape(stack.base_url)
        assert value(during, "jobcast_sse_streams_open") >= 1
        assert value(during, "jobcast_sockets_connected") >= 1
        assert api.post(f"/api/v1/jobs/{long['id']}/cancel").status_code == 202
        streamed = _read_sse(stream)
    assert streamed[-1] == "job.cancelled"

    ok = api.submit("demo.steps", {"steps": 3, "step_ms": 50})
    failed = api.submit("test.fail")
    ears.wait_terminal(ok["id"])
    ears.wait_terminal(failed["id"])

    def moved(name: str, by: float, **labels: str) -> bool:
        return value(scrape(stack.base_url), name, **labels) - value(before, name, **labels) >= by

    wait_for(lambda: moved("jobcast_job_run_seconds_count", 2, type="demo.steps"))
    wait_for(lambda: moved("jobcast_jobs_failed_total", 1, type="test.fail"))
    after = scrape(stack.base_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    steps = {"type": "demo.steps"}
    assert delta("jobcast_jobs_submitted_total", **steps) == 2
    assert delta("jobcast_jobs_started_total", **steps) == 2
    assert delta("jobcast_jobs_succeeded_total", **steps) == 1
    assert delta("jobcast_jobs_cancelled_total", **steps) == 1
    assert delta("jobcast_jobs_failed_total", **steps) == 0
    assert delta("jobcast_jobs_retried_total", **steps) == 0
    assert delta("jobcast_job_queue_wait_seconds_count", **steps) == 2
    assert delta("jobcast_job_run_seconds_count", **steps) == 2
    assert delta("jobcast_job_run_seconds_sum", **steps) > 0.1  # three 50 ms steps at least
    fail = {"type": "test.fail"}
    assert delta("jobcast_jobs_submitted_total", **fail) == 1
    assert delta("jobcast_jobs_failed_total", **fail) == 1
    assert delta("jobcast_jobs_succeeded_total", **fail) == 0

    # Events: published by the web process (queued) and the workers (the rest), delivered live.
    assert delta("jobcast_events_published_total", event="job.queued") == 3
    assert delta("jobcast_events_published_total", event="job.succeeded") == 1
    assert delta("jobcast_events_published_total", event="job.cancelled") == 1
    assert delta("jobcast_events_published_total", event="job.progress") >= 4
    assert delta("jobcast_events_delivered_total", transport="sse") == len(streamed)
    assert delta("jobcast_events_delivered_total", transport="socket") >= 8
    assert delta("jobcast_event_delivery_seconds_count", transport="socket") >= 8
    assert delta("jobcast_event_delivery_seconds_count", transport="sse") >= 1

    # HTTP by route rule and status, never by the path a client sent.
    jobs_route = {"method": "POST", "route": "/api/v1/jobs", "status": "202"}
    assert delta("jobcast_http_requests_total", **jobs_route) == 3
    cancel = {"method": "POST", "route": "/api/v1/jobs/<job_id>/cancel", "status": "202"}
    assert delta("jobcast_http_requests_total", **cancel) == 1
    assert delta("jobcast_http_request_duration_seconds_count", method="POST", route="/api/v1/jobs")
    assert value(after, "jobcast_sse_streams_open") == value(before, "jobcast_sse_streams_open")

    # The workers' own gauges and the queues' lengths, asked of Redis at scrape time.
    assert value(after, "jobcast_workers_alive") == 2  # the io and cpu workers of --pool all
    for queue in queue_names("jobcast").values():
        assert ("jobcast_queue_length", frozenset({("queue", queue)})) in after

    secret = {long["id"], ok["id"], failed["id"], _user_id(api), socket.gethostname()}
    label_values = {v for _, labels in after for _, v in labels}
    assert not label_values & secret


def test_the_queue_length_counts_waiting_messages(stack: Stack, spare_redis: Any) -> None:
    """A web process over a Redis no worker consumes: its submitted jobs wait in the queue."""
    url, _ = spare_redis
    web = stack.start_web(name="web-idle-queue", env={"JOBCAST_REDIS_URL": url})
    api = Api(web).signup()
    for _ in range(3):
        api.submit("demo.steps", {"steps": 1, "step_ms": 1})
    samples = scrape(web)
    stack.process("web-idle-queue").terminate()
    assert value(samples, "jobcast_queue_length", queue=queue_names("jobcast")["io"]) == 3


def _production_app(stack: Stack, **settings: Any) -> Any:
    return create_app(
        {
            "env": "production",
            "secret_key": "s" * 40,
            "jwt_secret_key": "j" * 40,
            "database_url": stack.env["JOBCAST_DATABASE_URL"],
            "allow_sqlite_in_production": True,
            "redis_url": stack.env["JOBCAST_REDIS_URL"],
            "storage_dir": stack.storage_dir,
            **settings,
        }
    )


def test_production_metrics_need_the_configured_token(stack: Stack) -> None:
    hidden = _production_app(stack).test_client()
    assert hidden.get("/metrics").status_code == 404
    assert hidden.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404

    client = _production_app(stack, metrics_token=TOKEN).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.mimetype == "application/problem+json"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert b"jobcast_jobs_submitted_total" in answer.data


def test_with_metrics_off_metrics_is_404_everywhere(stack: Stack) -> None:
    app = stack.app(metrics=False, metrics_token=TOKEN)
    answer = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404


def test_a_token_set_in_testing_is_checked_there_too(stack: Stack) -> None:
    url = stack.start_web(name="web-token", env={"JOBCAST_METRICS_TOKEN": TOKEN})
    assert_problem(requests.get(url + "/metrics", timeout=10), 401)
    good = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    stack.process("web-token").terminate()
    assert good.status_code == 200
