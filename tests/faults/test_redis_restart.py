"""Redis stopped for 5 s under running and queued jobs, then started again with its data (its
append-only file) and without: the worker consumes again by itself and every job ends.

The stack is the fault stack (web, one gevent io worker, beat) over a private Redis with AOF on
(``appendfsync everysec``, what ``jobcast check`` asks for). Settings that make the bounds short:
``JOBCAST_JOB_LEASE_SECONDS=3`` and ``JOBCAST_RECOVERY_SWEEP_SECONDS=1`` (the fault stack's),
``JOBCAST_QUEUED_REDISPATCH_SECONDS=2``, ``JOBCAST_VISIBILITY_TIMEOUT=10`` (its minimum),
``JOBCAST_BROKER_RESTORE_SECONDS=2``, and ``JOBCAST_IO_CONCURRENCY=4`` so that of the 10 jobs
some run and the rest wait in the broker's queue when Redis goes.

The client follows its jobs as the dashboard does: over Socket.IO, keeping each job's events by
(epoch, seq), asking ``job.resume`` from the last one it has on every reconnect and once when
the jobs have ended (as the page does when a job's row says it ended).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import socketio

from tests.faults.conftest import FaultStack, statuses, wait_until
from tests.integration.support import EVENTS, Api
from tests.redis_server import RedisServer

OUTAGE_SECONDS = 5.0
JOBS = 10
STEPS, STEP_MS = 10, 300
SETTINGS = {
    "JOBCAST_IO_CONCURRENCY": "4",
    "JOBCAST_QUEUED_REDISPATCH_SECONDS": "2",
    "JOBCAST_VISIBILITY_TIMEOUT": "10",
    "JOBCAST_BROKER_RESTORE_SECONDS": "2",
}
#: From Redis back to a BRPOP on the queue: the worker's reconnection backoff.
CONSUMING_BOUND = 20.0
#: From Redis back to every job terminal: lease + sweep + redispatch age, then the 10 jobs
#: (3 s each, 4 at a time) run again.
TERMINAL_BOUND = 45.0
FINAL = {"succeeded", "failed", "cancelled"}


class PrivateRedis(RedisServer):
    """A Redis server with an append-only file, stopped and started again by the test."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, persist=True)

    def consumers(self) -> int:
        """Connections blocked in BRPOP (the worker consuming its queues); -1 if Redis is down."""
        try:
            with redis.Redis.from_url(self.url, socket_timeout=2) as client:
                return sum(c.get("cmd") == "brpop" for c in client.client_list())
        except redis.ConnectionError:
            return -1


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fault_redis(private_redis: PrivateRedis) -> Callable[[], str]:
    """The fault stack's Redis is the test's own, which it stops and starts."""
    return lambda: private_redis.url


class Follower:
    """A user's Socket.IO client that keeps every job event it gets by (epoch, seq) and, like
    the dashboard, resumes from there on every reconnect."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.client = socketio.Client(reconnection_delay=0.5, reconnection_delay_max=2)
        self.events: dict[str, dict[tuple[int, int], tuple[str, dict[str, Any]]]] = defaultdict(
            dict
        )
        #: Two different events under one (epoch, seq): one would be dropped as a duplicate.
        self.conflicts: list[tuple[str, Any, Any]] = []
        self.connects = 0
        self._lock = threading.Lock()
        for name in EVENTS:
            self.client.on(name, self._recorder(name))
        self.client.on("connect", self._on_connect)
        self.client.connect(base_url, auth={"token": token}, wait_timeout=10)

    def _recorder(self, name: str) -> Callable[[dict[str, Any]], None]:
        def record(payload: dict[str, Any]) -> None:
            key = (payload.get("epoch", 0), payload["seq"])
            with self._lock:
                known = self.events[payload["job_id"]].setdefault(key, (name, payload))
                if known != (name, payload):
                    self.conflicts.append((payload["job_id"], known, (name, payload)))

        return record

    def _on_connect(self) -> None:
        self.connects += 1
        if self.connects > 1:  # a reconnect: ask for what was missed meanwhile
            self.client.start_background_task(self.resume)

    def position(self, job_id: str) -> tuple[int, int]:
        """The last event before the first gap, as the dashboard's store keeps it: the next
        one is seq + 1 of the same epoch, or seq 1 of a newer one."""
        at = (0, 0)
        with self._lock:
            for epoch, seq in sorted(self.events[job_id]):
                if (epoch, seq) != (at[0], at[1] + 1) and not (epoch > at[0] and seq == 1):
                    break
                at = (epoch, seq)
        return at

    def resume(self, job_ids: list[str] | None = None) -> None:
        """Replay each job's events after the last one this client has."""
        asks = []
        for job_id in job_ids if job_ids is not None else list(self.events):
            epoch, seq = self.position(job_id)
            asks.append({"job_id": job_id, "after_seq": seq, "epoch": epoch})
        if asks:
            self.client.call("job.resume", asks, timeout=10)

    def names(self, job_id: str) -> list[str]:
        with self._lock:
            return [self.events[job_id][key][0] for key in sorted(self.events[job_id])]

    def keys(self, job_id: str) -> set[tuple[int, int]]:
        with self._lock:
            return set(self.events[job_id])

    def close(self) -> None:
        self.client.disconnect()


def recorded(api: Api, job_id: str) -> dict[tuple[int, int], str]:
    """The job's durable log as a fresh client replays it: (epoch, seq) -> event name."""
    fresh = Follower(api.base_url, api.token)
    try:
        fresh.resume([job_id])
        return {key: name for key, (name, _) in fresh.events[job_id].items()}
    finally:
        fresh.close()


def outage(
    fault_stack: Callable[..., FaultStack], private_redis: PrivateRedis, *, keep_data: bool
) -> tuple[Api, Follower, list[str], tuple[int, int] | None]:
    """Submit the jobs, stop Redis for OUTAGE_SECONDS (losing its data unless ``keep_data``),
    start it again, and wait for every job to end; returns the client's view and the highest
    (epoch, seq) any job had reached before the stop."""
    stack = fault_stack(**SETTINGS)
    api = stack.api().signup()
    follower = Follower(stack.base_url, api.token)
    wait_until(lambda: private_redis.consumers() > 0, 30, "the worker consuming")
    jobs = [
        api.submit("demo.steps", {"steps": STEPS, "step_ms": STEP_MS})["id"] for _ in range(JOBS)
    ]
    wait_until(lambda: "running" in statuses(api, jobs).values(), 15, "a job running")
    time.sleep(1.0)
    before = max((max(follower.keys(j), default=(0, 0)) for j in jobs), default=None)
    private_redis.stop()
    if not keep_data:
        private_redis.wipe()
    time.sleep(OUTAGE_SECONDS)
    private_redis.start()
    back = time.monotonic()
    consuming = wait_until(
        lambda: private_redis.consumers() > 0, CONSUMING_BOUND, "the worker consuming again"
    )
    terminal = wait_until(
        lambda: set(statuses(api, jobs).values()) <= FINAL, TERMINAL_BOUND, "every job terminal"
    )
    ended = Counter(statuses(api, jobs).values())
    print(
        f"\nRedis restarted {'with' if keep_data else 'without'} its data after"
        f" {OUTAGE_SECONDS:g} s: worker consuming {consuming:.1f} s after, all {JOBS} jobs"
        f" terminal {time.monotonic() - back:.1f} s after ({dict(ended)});"
        f" client reconnects: {follower.connects - 1}"
    )
    assert terminal < TERMINAL_BOUND
    follower.resume(jobs)  # the page saw the rows end: it asks for what it has not got
    return api, follower, jobs, before


def assert_client_got_the_end(api: Api, follower: Follower, jobs: list[str]) -> None:
    """Each job's last event, as the client has it, is the terminal one its row says."""
    assert follower.conflicts == []
    missing = []
    for job_id in jobs:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        names = follower.names(job_id)
        if not names or names[-1] != f"job.{job['status']}":
            missing.append((job_id, job["status"], job.get("error"), names[-3:]))
        if job["status"] == "failed":
            assert job["error"] and job["error"]["message"], job
    assert missing == [], f"{len(missing)} jobs ended without the client getting it: {missing}"


@pytest.mark.timeout(120)
def test_with_its_data_the_worker_consumes_again_and_clients_get_every_event(
    fault_stack: Callable[..., FaultStack], private_redis: PrivateRedis
) -> None:
    api, follower, jobs, _ = outage(fault_stack, private_redis, keep_data=True)
    for job_id in jobs:
        log = recorded(api, job_id)
        assert set(log) <= follower.keys(job_id), f"{job_id}: the client missed events"
        seqs = sorted(log)
        epochs = {epoch for epoch, _ in seqs}
        assert len(epochs) == 1 and [s for _, s in seqs] == list(range(1, len(seqs) + 1))
    assert_client_got_the_end(api, follower, jobs)
    follower.close()


@pytest.mark.timeout(120)
def test_without_its_data_every_job_ends_and_new_events_are_never_taken_for_old_ones(
    fault_stack: Callable[..., FaultStack], private_redis: PrivateRedis
) -> None:
    api, follower, jobs, before = outage(fault_stack, private_redis, keep_data=False)
    assert before is not None
    for job_id in jobs:
        # What Redis recorded since it came back, all under a numbering newer than any before.
        log = recorded(api, job_id)
        assert set(log) <= follower.keys(job_id), f"{job_id}: the client missed events"
        assert all(epoch > before[0] for epoch, _ in log), (job_id, sorted(log), before)
    assert_client_got_the_end(api, follower, jobs)
    follower.close()
