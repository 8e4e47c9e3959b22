"""A job's whole life over HTTP and Socket.IO, through a real web server, Redis and worker."""

from __future__ import annotations

from tests.integration.conftest import Stack
from tests.integration.support import Api


def test_demo_steps_streams_ordered_progress_and_succeeds(api: Api, listener_factory) -> None:
    listener = listener_factory(api.token)
    response = api.post(
        "/api/v1/jobs", json={"type": "demo.steps", "params": {"steps": 5, "step_ms": 150}}
    )
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == 0

    events = listener.wait_terminal(job["id"])
    names = [name for name, _ in events]
    assert names[0] == "job.queued" and names[1] == "job.started"
    assert names[-1] == "job.succeeded"
    assert [p["seq"] for _, p in events] == list(range(1, len(events) + 1))
    progress = [p["progress"] for n, p in events if n == "job.progress"]
    assert progress == sorted(progress) and len(progress) >= 3 and progress[-1] == 100
    assert all(p["status"] == "running" for n, p in events if n == "job.progress")
    final = events[-1][1]
    assert final["status"] == "succeeded" and final["result"] == {"steps": 5}
    assert isinstance(final["ts"], float)

    row = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert row["status"] == "succeeded" and row["progress"] == 100
    assert row["attempts"] == 1 and row["result"] == {"steps": 5}
    assert row["started_at"] and row["finished_at"] and row["created_at"].endswith("Z")


def test_two_users_never_see_each_others_events(stack: Stack, listener_factory) -> None:
    alice, bob = stack.api().signup(), stack.api().signup()
    alice_ears, bob_ears = listener_factory(alice.token), listener_factory(bob.token)
    alice_second_tab = listener_factory(alice.token)
    a = alice.submit("demo.steps", {"steps": 3, "step_ms": 50})
    b = bob.submit("demo.steps", {"steps": 3, "step_ms": 50})
    alice_ears.wait_terminal(a["id"])
    bob_ears.wait_terminal(b["id"])
    alice_second_tab.wait_terminal(a["id"])
    assert {p["job_id"] for _, p in alice_ears.events} == {a["id"]}
    assert {p["job_id"] for _, p in bob_ears.events} == {b["id"]}
    assert bob.get(f"/api/v1/jobs/{a['id']}").status_code == 404
    assert [j["id"] for j in bob.get("/api/v1/jobs").json()["items"]] == [b["id"]]


def test_request_id_follows_the_job_into_the_worker_log(stack: Stack, api: Api) -> None:
    request_id = "trace-" + "7" * 20
    response = api.post(
        "/api/v1/jobs",
        json={"type": "demo.steps", "params": {"steps": 1, "step_ms": 0}},
        headers={"X-Request-ID": request_id},
    )
    assert response.headers["X-Request-ID"] == request_id
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded"
    worker_log = (stack.logs / "worker-all.log").read_text()
    lines = [line for line in worker_log.splitlines() if job["id"] in line]
    assert lines and all(f"req={request_id}" in line for line in lines)
