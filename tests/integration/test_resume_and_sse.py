"""Nothing lost: replay over Socket.IO (`job.resume`) and Server-Sent Events from the event log."""

from __future__ import annotations

import json
import threading
from typing import Any

import requests

from tests.integration.conftest import Stack
from tests.integration.support import Api


def _finished_job(api: Api, listener_factory: Any, steps: int = 6) -> list[tuple[str, dict]]:
    ears = listener_factory(api.token)
    job = api.submit("demo.steps", {"steps": steps, "step_ms": 120})
    return ears.wait_terminal(job["id"])


def test_resume_replays_only_events_after_the_given_seq_to_the_asker(
    api: Api, listener_factory: Any
) -> None:
    events = _finished_job(api, listener_factory)
    job_id = events[0][1]["job_id"]
    late = listener_factory(api.token)
    ack = late.client.call("job.resume", {"job_id": job_id, "after_seq": 2}, timeout=10)
    assert ack == {"job_id": job_id, "replayed": len(events) - 2}
    replayed = late.wait_terminal(job_id)
    assert replayed == events[2:]


def test_resume_without_seq_sends_the_whole_history_and_accepts_a_list(
    api: Api, listener_factory: Any
) -> None:
    first = _finished_job(api, listener_factory, steps=3)
    second = _finished_job(api, listener_factory, steps=4)
    late = listener_factory(api.token)
    ack = late.client.call(
        "job.resume",
        [{"job_id": first[0][1]["job_id"]}, {"job_id": second[0][1]["job_id"], "after_seq": 1}],
        timeout=10,
    )
    assert [r["replayed"] for r in ack["results"]] == [len(first), len(second) - 1]
    assert late.wait_terminal(first[0][1]["job_id"]) == first
    assert late.wait_terminal(second[0][1]["job_id"]) == second[1:]


def test_resume_of_a_foreign_or_unknown_job_errors_and_sends_nothing(
    stack: Stack, api: Api, listener_factory: Any
) -> None:
    events = _finished_job(api, listener_factory, steps=2)
    mallory = stack.api().signup()
    spy = listener_factory(mallory.token)
    job_id = events[0][1]["job_id"]
    assert spy.client.call("job.resume", {"job_id": job_id}, timeout=10) == {
        "job_id": job_id,
        "error": "not found",
    }
    unknown = "00000000-0000-4000-8000-000000000000"
    assert spy.client.call("job.resume", {"job_id": unknown}, timeout=10)["error"] == "not found"
    assert "error" in spy.client.call("job.resume", {"after_seq": "x"}, timeout=10)
    spy.client.sleep(0.5)
    assert spy.events == []


def _read_sse(response: requests.Response) -> list[tuple[int, str, dict]]:
    events, fields = [], {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "event" in fields:
                # The id is <epoch>-<seq>.
                seq = int(fields["id"].rpartition("-")[2])
                events.append((seq, fields["event"], json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def test_sse_streams_history_then_live_events_and_ends_after_the_terminal_one(
    api: Api,
) -> None:
    job = api.submit("demo.steps", {"steps": 8, "step_ms": 150})
    with api.get(f"/api/v1/jobs/{job['id']}/events", stream=True) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = _read_sse(response)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    assert events[0][1] == "job.queued" and events[-1][1] == "job.succeeded"
    assert all(seq == payload["seq"] for seq, _, payload in events)
    assert sum(1 for _, name, _ in events if name == "job.progress") >= 3

    with api.get(
        f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "3"}, stream=True
    ) as again:
        assert [seq for seq, _, _ in _read_sse(again)] == list(range(4, len(events) + 1))


def test_sse_follows_the_same_rules_as_the_job_endpoints(stack: Stack, api: Api) -> None:
    job = api.wait_job(api.submit("demo.steps", {"steps": 1, "step_ms": 0})["id"])
    mallory = stack.api().signup()
    assert mallory.get(f"/api/v1/jobs/{job['id']}/events").status_code == 404
    anonymous = stack.api().get(f"/api/v1/jobs/{job['id']}/events")
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"] == "application/problem+json"


def test_sse_keeps_every_event_when_many_readers_follow_one_job(api: Api) -> None:
    job = api.submit("demo.steps", {"steps": 10, "step_ms": 100})
    seen: list[list[int]] = []

    def follow() -> None:
        with api.get(f"/api/v1/jobs/{job['id']}/events", stream=True) as response:
            seen.append([seq for seq, _, _ in _read_sse(response)])

    readers = [threading.Thread(target=follow) for _ in range(5)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=60)
    assert len(seen) == 5 and all(s == seen[0] for s in seen)
    assert seen[0] == list(range(1, len(seen[0]) + 1))
