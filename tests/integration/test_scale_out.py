"""Scale-out: two web processes and two workers share one Redis and one database; a client
connected to either web process receives its user's events, wherever the job runs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from jobcast.realtime.wire import user_channel
from tests.integration.conftest import ROOT, Stack
from tests.integration.support import Api, Listener

JOBS_PER_USER = 6


@pytest.mark.timeout(240)
def test_clients_on_either_web_process_get_their_events(tmp_path: Path) -> None:
    with Stack(
        tmp_path,
        env_overrides={"JOBCAST_IO_CONCURRENCY": "10", "PYTHONPATH": str(ROOT)},
        worker_pools=("io",),
    ) as stack:
        stack.start_process(
            "worker-io-2", [sys.executable, "-m", "jobcast", "worker", "--pool", "io"]
        )
        webs = [stack.base_url, stack.start_web(name="web-2")]
        users = [stack.api().signup() for _ in range(4)]
        # Every user has one tab on each web process.
        tabs = [[Listener(web, user.token) for web in webs] for user in users]
        # 24 one-second jobs against 2 x 10 slots: both workers must take some.
        jobs = [
            [user.submit("demo.steps", {"steps": 10, "step_ms": 100})["id"]
             for _ in range(JOBS_PER_USER)]
            for user in users
        ]  # fmt: skip
        for own, user_tabs in zip(jobs, tabs, strict=True):
            for tab in user_tabs:
                for job_id in own:
                    events = tab.wait_terminal(job_id)
                    assert [p["seq"] for _, p in events] == list(range(1, len(events) + 1))
                assert {p["job_id"] for _, p in tab.events} == set(own)
        for name in ("worker-io.log", "worker-io-2.log"):
            assert "succeeded" in (stack.logs / name).read_text(), f"{name} ran no job"
        for user_tabs in tabs:
            for tab in user_tabs:
                tab.close()


def _subscribers(stack: Stack, redis: Redis, user_id: int) -> int:
    """How many web processes listen on ``user_id``'s event channel."""
    channel = stack.env["JOBCAST_SOCKETIO_CHANNEL"]
    ((_, count),) = redis.pubsub_numsub(f"{channel}:user:{user_id}")
    return int(count)


def _eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.mark.timeout(120)
def test_a_web_process_listens_only_to_the_users_connected_to_it(tmp_path: Path) -> None:
    """Events are partitioned per user: a web process subscribes to a user's channel while
    it holds one of that user's connections, so it never decodes other users' events."""
    with Stack(tmp_path, worker_pools=("io",)) as stack:
        webs = [stack.base_url, stack.start_web(name="web-2")]
        redis = Redis.from_url(stack.env["JOBCAST_REDIS_URL"])
        alice, bob = stack.api().signup(), stack.api().signup()
        me = [u.get("/api/v1/me") for u in (alice, bob)]
        assert all(r.status_code == 200 for r in me), [r.text for r in me]
        alice_id, bob_id = (r.json()["id"] for r in me)

        alice_tab = Listener(webs[0], alice.token)
        assert (
            _subscribers(stack, redis, alice_id) == 1
        )  # subscribed before the connect was accepted
        assert _subscribers(stack, redis, bob_id) == 0
        bob_tab = Listener(webs[1], bob.token)
        alice_second_tab = Listener(webs[1], alice.token)
        assert (_subscribers(stack, redis, alice_id), _subscribers(stack, redis, bob_id)) == (2, 1)

        # Each user's events reach each of their tabs, whichever process holds it.
        job_id = alice.submit("demo.steps", {"steps": 3, "step_ms": 10})["id"]
        for tab in (alice_tab, alice_second_tab):
            assert tab.wait_terminal(job_id)[-1][0] == "job.succeeded"
        assert bob_tab.events == []

        alice_tab.close()
        assert _eventually(lambda: _subscribers(stack, redis, alice_id) == 1)
        alice_second_tab.close()
        bob_tab.close()
        assert _eventually(
            lambda: _subscribers(stack, redis, alice_id) + _subscribers(stack, redis, bob_id) == 0
        )


def _drop_web_subscribers(redis: Redis) -> int:
    """Close the web processes' subscriber connections (Celery's pattern subscriber stays)."""
    ids = [c["id"] for c in redis.client_list(_type="pubsub") if c["psub"] == "0"]
    for client_id in ids:
        redis.client_kill_filter(_id=client_id)
    return len(ids)


def _delivers_a_job(user: Api, tab: Listener) -> bool:
    """Whether a fresh job of ``user`` reaches ``tab`` within a few seconds."""
    job_id = user.submit("demo.steps", {"steps": 1, "step_ms": 10})["id"]
    try:
        tab.wait_terminal(job_id, timeout=3)
    except AssertionError:
        return False
    return True


@pytest.mark.timeout(120)
def test_delivery_outlives_a_bad_message_and_a_lost_redis_connection(tmp_path: Path) -> None:
    """A packet that cannot be decoded is skipped, and when Redis drops the web process's
    subscriber connection it connects and subscribes again: the user's next events arrive."""
    with Stack(tmp_path, worker_pools=("io",)) as stack:
        redis = Redis.from_url(stack.env["JOBCAST_REDIS_URL"])
        alice = stack.api().signup()
        alice_id = alice.get("/api/v1/me").json()["id"]
        tab = Listener(stack.base_url, alice.token)

        redis.publish(user_channel(stack.env["JOBCAST_SOCKETIO_CHANNEL"], alice_id), b"\xff")
        assert _delivers_a_job(alice, tab)
        assert "could not deliver" in (stack.logs / "web.log").read_text()

        assert _drop_web_subscribers(redis) == 1
        # Events published while it reconnects are lost; later ones must arrive.
        assert _eventually(lambda: _delivers_a_job(alice, tab), timeout=30)
        tab.close()
