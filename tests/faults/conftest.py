"""Fault tests: the real processes (Redis, ``jobcast web``, ``jobcast worker``, Celery beat)
broken the way production breaks them, then the end state checked.

Each module gets a Redis server of its own and each test a database of that server of its own
(and its own SQLite file), so a test that kills processes leaves nothing behind for the next.
Leases and sweeps are shortened so that a recovery fits the test's time; the bound each test
asserts is the documented one for those settings.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from jobcast import create_app
from jobcast.service.procs import free_port, redis_server_command, wait_for_port
from jobcast.service.testing import LocalStack
from tests.integration.support import TERMINAL_EVENTS, Api, Listener

ROOT = Path(__file__).parents[2]
#: Short enough for a test, the same mechanism as the defaults (30 s and 10 s).
LEASE_SECONDS = 3.0
SWEEP_SECONDS = 1.0


class FaultStack(LocalStack):
    """A stack whose processes a test kills and restarts by name."""

    _app: Flask | None = None

    def api(self) -> Api:
        return Api(self.base_url)

    def listen(self, token: str | None) -> Listener:
        return Listener(self.base_url, token)

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start_process(name, [sys.executable, "-m", "jobcast", "worker", "--pool", "io"])

    def start_beat(self) -> subprocess.Popen[bytes]:
        schedule = self.root / "beat-schedule"
        return self.start_process(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "jobcast.service.worker",
                "beat",
                "-s",
                str(schedule),
            ],
        )

    def signal(self, name: str, signum: int) -> None:
        """Send ``signum`` to the process and its children (its own process group)."""
        os.killpg(self.process(name).pid, signum)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.process(name).wait()

    def app(self) -> Flask:
        """An in-process app over the stack's database and Redis (to read rows and logs)."""
        if self._app is None:
            self._app = create_app(
                {
                    "env": "testing",
                    "redis_url": self.env["JOBCAST_REDIS_URL"],
                    "database_url": self.env["JOBCAST_DATABASE_URL"],
                    "storage_dir": self.storage_dir,
                }
            )
        return self._app

    def history(self, job_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The job's recorded events (its durable log in Redis)."""
        from jobcast.runtime import runtime_of

        return runtime_of(self.app()).events.history(job_id)


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A Redis server of the module's own; each call gives the URL of a database not yet used."""
    port = free_port()
    directory = tmp_path_factory.mktemp("fault-redis")
    proc = subprocess.Popen(
        redis_server_command(port, directory, persist=False), stdout=subprocess.DEVNULL
    )
    wait_for_port("127.0.0.1", port)
    numbers = itertools.count()
    try:
        yield lambda: f"redis://127.0.0.1:{port}/{next(numbers) % 16}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def fault_stack(
    tmp_path: Path, fault_redis: Callable[[], str]
) -> Iterator[Callable[..., FaultStack]]:
    """Make the test's stack (web, one io worker named ``worker``, beat): ``fault_stack(**env)``.
    Its logs are printed when the test fails."""
    made: list[FaultStack] = []

    def make(database_url: str | None = None, **env: str) -> FaultStack:
        stack = FaultStack(
            tmp_path / f"stack{len(made)}",
            redis_url=fault_redis(),
            database_url=database_url,
            worker_pools=(),
            env_overrides={
                "JOBCAST_JOB_MODULES": "jobcast.service.builtin,tests.faults.jobs",
                "JOBCAST_IO_CONCURRENCY": "50",
                "JOBCAST_CPU_CONCURRENCY": "1",
                "JOBCAST_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
                "JOBCAST_RECOVERY_SWEEP_SECONDS": str(SWEEP_SECONDS),
                "JOBCAST_QUEUED_REDISPATCH_SECONDS": "5",
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                **env,
            },
        )
        stack.__enter__()
        made.append(stack)
        stack.start_worker("worker")
        stack.start_beat()
        return stack

    yield make
    for stack in made:
        stack.stop()
    if os.environ.get("JOBCAST_TEST_SHOW_LOGS"):
        for stack in made:
            for log in sorted(stack.logs.iterdir()):
                print(f"===== {log.name}\n{log.read_text(errors='replace')[-20000:]}")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - start


def statuses(api: Api, job_ids: list[str]) -> dict[str, str]:
    return {j: api.get(f"/api/v1/jobs/{j}").json()["status"] for j in job_ids}


def check_events(
    stack: FaultStack, job_id: str, listener: Listener | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The job's log is numbered 1..n without a gap and ends in its one terminal event, and
    the live client got every one of them (duplicates, if any, dropped by seq)."""
    history = stack.history(job_id)
    seqs = [payload["seq"] for _, payload in history]
    assert seqs == list(range(1, len(seqs) + 1)), (job_id, seqs)
    names = [name for name, _ in history]
    assert [n for n in names if n in TERMINAL_EVENTS] == [names[-1]], (job_id, names)
    if listener is not None:
        received = {payload["seq"]: name for name, payload in listener.for_job(job_id)}
        assert received == dict(zip(seqs, names, strict=True)), (job_id, received, names)
    return history
