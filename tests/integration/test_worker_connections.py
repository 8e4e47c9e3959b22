"""A gevent worker opens the Redis connections its jobs publish on when it starts, so a moment
when many jobs publish at once does not wait for connections to be opened."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import BlockingConnectionPool, Redis

from jobcast.runtime import open_connections
from tests.integration.conftest import Stack


def _named(redis: Redis, name: str) -> int:
    return sum(1 for client in redis.client_list() if client.get("name") == name)


def test_open_connections_opens_them_at_once_and_they_are_reused(redis_url: str) -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    client = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            redis_url, max_connections=10, client_name=name
        )
    )
    observer = Redis.from_url(redis_url)
    try:
        assert _named(observer, name) == 0
        open_connections(client, 6)
        assert _named(observer, name) == 6
        for _ in range(20):
            client.ping()
        assert _named(observer, name) == 6
    finally:
        client.close()
        client.connection_pool.disconnect()
        observer.close()


@pytest.mark.timeout(120)
def test_a_gevent_worker_opens_its_jobs_connections_before_the_first_job(tmp_path: Path) -> None:
    concurrency = 40
    with Stack(
        tmp_path, env_overrides={"JOBCAST_IO_CONCURRENCY": str(concurrency)}, worker_pools=()
    ) as stack:
        observer = Redis.from_url(stack.redis_url or "")
        baseline = len(observer.client_list())
        stack.start_process(
            "worker-io", [sys.executable, "-m", "jobcast", "worker", "--pool", "io"]
        )
        deadline = time.monotonic() + 60
        while len(observer.client_list()) < baseline + concurrency:
            assert time.monotonic() < deadline, (
                f"{len(observer.client_list()) - baseline} worker connections, not {concurrency}"
            )
            time.sleep(0.2)
        # And the worker runs jobs on them.
        user = stack.api().signup()
        job_id = user.submit("demo.steps", {"steps": 2, "step_ms": 10})["id"]
        assert user.wait_job(job_id)["status"] == "succeeded"
        observer.close()
