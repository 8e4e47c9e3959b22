"""Idempotent submits and cancellation."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from tests.integration.conftest import Stack
from tests.integration.support import Api


def _submit(api: Api, key: str, params: dict[str, Any]) -> Any:
    return api.post(
        "/api/v1/jobs",
        json={"type": "demo.steps", "params": params},
        headers={"Idempotency-Key": key},
    )


def test_same_key_and_body_returns_the_original_job(api: Api) -> None:
    key = uuid.uuid4().hex
    first = _submit(api, key, {"steps": 1, "step_ms": 0})
    again = _submit(api, key, {"steps": 1, "step_ms": 0})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(api.get("/api/v1/jobs").json()["items"]) == 1


def test_same_key_with_another_body_is_rejected(api: Api) -> None:
    key = uuid.uuid4().hex
    assert _submit(api, key, {"steps": 1, "step_ms": 0}).status_code == 202
    other = _submit(api, key, {"steps": 2, "step_ms": 0})
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_keys_belong_to_one_user(stack: Stack, api: Api) -> None:
    key = uuid.uuid4().hex
    mine = _submit(api, key, {"steps": 1, "step_ms": 0}).json()
    theirs = _submit(stack.api().signup(), key, {"steps": 1, "step_ms": 0})
    assert theirs.status_code == 202 and theirs.json()["id"] != mine["id"]


def test_concurrent_duplicates_create_one_job(api: Api) -> None:
    key = uuid.uuid4().hex
    start = threading.Barrier(8)
    answers: list[Any] = []

    def race() -> None:
        start.wait()
        answers.append(_submit(api, key, {"steps": 1, "step_ms": 0}))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(api.get("/api/v1/jobs").json()["items"]) == 1


def test_a_bad_idempotency_key_is_a_validation_error(api: Api) -> None:
    response = _submit(api, "x" * 300, {"steps": 1})
    assert response.status_code == 422


def test_cancelling_a_running_job_stops_it_and_removes_its_partial_file(
    stack: Stack, api: Api, listener_factory: Any
) -> None:
    ears = listener_factory(api.token)
    job = api.submit("test.chunks", {"chunks": 200, "chunk_ms": 50})
    api.wait_job(job["id"], until=lambda j: j["progress"] >= 5)
    response = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and response.json()["id"] == job["id"]
    events = ears.wait_terminal(job["id"])
    assert events[-1][0] == "job.cancelled" and events[-1][1]["status"] == "cancelled"
    final = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert final["status"] == "cancelled" and final["progress"] < 100
    assert final["result"] is None
    assert not list(stack.storage_dir.glob(f"*/{job['id']}/**/*.txt"))
    assert api.get(f"/api/v1/jobs/{job['id']}/result").status_code == 404


def test_cancelling_a_finished_job_is_a_conflict(api: Api) -> None:
    job = api.wait_job(api.submit("demo.steps", {"steps": 1, "step_ms": 0})["id"])
    response = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/problem+json"


def test_cancelling_someone_elses_job_is_not_found(stack: Stack, api: Api) -> None:
    job = api.submit("demo.steps", {"steps": 50, "step_ms": 100})
    assert stack.api().signup().post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 404
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202


def test_time_limit_fails_the_job_with_timeout_and_the_worker_lives_on(api: Api) -> None:
    slow = api.wait_job(api.submit("test.slow", {"seconds": 30})["id"], timeout=40)
    assert slow["status"] == "failed" and slow["error"]["type"] == "timeout"
    time.sleep(0.5)
    after = api.wait_job(api.submit("demo.steps", {"steps": 1, "step_ms": 0})["id"])
    assert after["status"] == "succeeded"
