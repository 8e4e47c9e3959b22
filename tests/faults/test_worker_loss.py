"""A worker lost mid-run (SIGKILL) or stopped for a deploy (SIGTERM): every job still ends.

A killed worker's attempts are found by their lapsed lease and run again by the recovery sweep
(``jobcast.recover_lost``, sent by beat), long before the broker's visibility timeout (left at
its 2 h default here) would give their messages back.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import (
    LEASE_SECONDS,
    SWEEP_SECONDS,
    FaultStack,
    check_events,
    statuses,
    wait_until,
)

JOB_SECONDS = 3.0
# Lease lapse + one sweep interval, plus a restarted worker's start and a whole re-run.
WORKER_START = 15.0
BOUND = LEASE_SECONDS + SWEEP_SECONDS + WORKER_START + JOB_SECONDS


@pytest.mark.timeout(120)
def test_a_killed_workers_jobs_run_again_and_clients_get_every_event(
    fault_stack: Callable[..., FaultStack],
) -> None:
    stack = fault_stack()
    api = stack.api().signup()
    listener = stack.listen(api.token)
    jobs = [api.submit("demo.steps", {"steps": 30, "step_ms": 100})["id"] for _ in range(20)]
    wait_until(
        lambda: all(
            job["progress"] >= 10
            for job in api.get("/api/v1/jobs", params={"limit": 20}).json()["items"]
        ),
        30,
        "all 20 jobs running",
    )
    stack.kill("worker")
    killed = time.monotonic()
    time.sleep(2)
    stack.start_worker("worker-2")
    wait_until(
        lambda: set(statuses(api, jobs).values()) <= {"succeeded", "failed", "cancelled"},
        BOUND + 30,
        "every job terminal",
    )
    recovery = time.monotonic() - killed
    print(f"\nworker SIGKILL, 20 jobs: all terminal {recovery:.1f} s after the kill")
    for job_id in jobs:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        listener.wait_terminal(job_id, timeout=10)
        history = check_events(stack, job_id, listener)
        retrying = [p for n, p in history if n == "job.retrying"]
        assert [(p["error"]["type"], p["attempt"]) for p in retrying] == [("worker_lost", 1)]
        started = [p["attempt"] for n, p in history if n == "job.started"]
        assert started == [1, 2]
    listener.close()
    assert recovery < BOUND + JOB_SECONDS, f"recovered in {recovery:.1f} s, bound {BOUND:.0f} s"


@pytest.mark.timeout(120)
def test_a_job_that_must_not_run_twice_fails_with_worker_lost(
    fault_stack: Callable[..., FaultStack],
) -> None:
    stack = fault_stack()
    api = stack.api().signup()
    job_id = api.submit("faults.once", {"steps": 100, "step_ms": 100})["id"]
    api.wait_job(job_id, until=lambda j: j["progress"] >= 5, timeout=30)
    stack.kill("worker")
    killed = time.monotonic()
    time.sleep(2)
    stack.start_worker("worker-2")
    job = api.wait_job(job_id, timeout=BOUND + 30)
    recovery = time.monotonic() - killed
    print(f"\nworker SIGKILL, a not re-runnable job: {job['status']} after {recovery:.1f} s")
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert job["error"]["type"] == "worker_lost", job
    history = check_events(stack, job_id)
    assert [p["attempt"] for n, p in history if n == "job.started"] == [1]
    assert history[-1][0] == "job.failed"
    assert recovery < BOUND, f"failed after {recovery:.1f} s, bound {BOUND:.0f} s"


@pytest.mark.timeout(120)
def test_a_worker_stopped_for_a_deploy_finishes_or_hands_back_every_job(
    fault_stack: Callable[..., FaultStack],
) -> None:
    stack = fault_stack(JOBCAST_IO_CONCURRENCY="5")
    api = stack.api().signup()
    listener = stack.listen(api.token)
    jobs = [api.submit("demo.steps", {"steps": 20, "step_ms": 100})["id"] for _ in range(12)]
    wait_until(
        lambda: list(statuses(api, jobs).values()).count("running") == 5, 30, "5 jobs running"
    )
    stack.signal("worker", signal.SIGTERM)  # a deploy: warm shutdown
    stopped = time.monotonic()
    stack.start_worker("worker-2")
    wait_until(
        lambda: set(statuses(api, jobs).values()) <= {"succeeded", "failed", "cancelled"},
        90,
        "every job terminal",
    )
    recovery = time.monotonic() - stopped
    old = stack.process("worker")
    print(
        f"\nworker SIGTERM with 5 running, 7 queued: all terminal {recovery:.1f} s later;"
        f" old worker exited {old.poll()}"
    )
    for job_id in jobs:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        listener.wait_terminal(job_id, timeout=10)
        check_events(stack, job_id, listener)
    listener.close()
    assert old.wait(timeout=30) == 0
