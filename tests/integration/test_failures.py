"""Nothing lost when parts fail: a web server killed, a worker killed, the broker down.

Each test runs its own stack (own Redis, database and processes) because it breaks it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import update

from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.db.types import utcnow
from jobcast.jobs import lifecycle, recovery, service
from jobcast.runtime import current_runtime
from jobcast.service.auth.users import create_user
from tests.integration.conftest import ROOT, Stack, migrated_app
from tests.integration.support import EVENTS, TERMINAL_EVENTS, Api


def _stack(tmp_path: Path, **env: str) -> Stack:
    return Stack(
        tmp_path,
        env_overrides={
            "JOBCAST_JOB_MODULES": "jobcast.service.builtin,tests.integration.jobs",
            "JOBCAST_IO_CONCURRENCY": "50",
            "JOBCAST_CPU_CONCURRENCY": "1",
            "PYTHONPATH": str(ROOT),
            **env,
        },
    )


class ResumingClient:
    """A client that reconnects by itself and resumes every job from its last seen seq, as
    docs/api.md tells clients to; it keeps the set of seqs seen per job to count duplicates."""

    def __init__(self, base_url: str, token: str) -> None:
        self.seen: dict[str, list[int]] = {}
        self.terminal: set[str] = set()
        self.lock = threading.Lock()
        self.client = socketio.Client(
            reconnection=True, reconnection_delay=0.5, reconnection_delay_max=2
        )
        self.client.on("connect", self._resume)
        for name in EVENTS:
            self.client.on(name, self._recorder(name))
        self.client.connect(base_url, auth={"token": token}, wait_timeout=10)

    def _recorder(self, name: str) -> Any:
        def record(payload: dict[str, Any]) -> None:
            with self.lock:
                self.seen.setdefault(payload["job_id"], []).append(payload["seq"])
                if name in TERMINAL_EVENTS:
                    self.terminal.add(payload["job_id"])

        return record

    def _resume(self) -> None:
        with self.lock:
            asks = [{"job_id": j, "after_seq": _contiguous(s)} for j, s in self.seen.items()]
        if asks:
            self.client.emit("job.resume", asks)

    def track(self, job_id: str) -> None:
        with self.lock:
            self.seen.setdefault(job_id, [0])

    def close(self) -> None:
        self.client.disconnect()


def _contiguous(seqs: list[int]) -> int:
    """The highest seq up to which every event has arrived."""
    have, n = set(seqs), 0
    while n + 1 in have:
        n += 1
    return n


@pytest.mark.timeout(180)
def test_web_server_killed_mid_job_clients_resume_and_lose_nothing(tmp_path: Path) -> None:
    with _stack(tmp_path) as stack:
        users = [stack.api().signup() for _ in range(20)]
        clients = [ResumingClient(stack.base_url, u.token) for u in users]
        jobs = []
        for user, client in zip(users, clients, strict=True):
            job = user.submit("demo.steps", {"steps": 40, "step_ms": 100})
            client.track(job["id"])
            jobs.append(job["id"])
        time.sleep(1.0)
        port = int(stack.base_url.rsplit(":", 1)[1])
        web = stack.process("web")
        os.killpg(web.pid, signal.SIGKILL)
        web.wait()
        time.sleep(1.0)  # events published now reach no web process: only the log has them
        stack.start_web(port=port, name="web-2")

        deadline = time.monotonic() + 90
        while any(j not in c.terminal for j, c in zip(jobs, clients, strict=True)):
            assert time.monotonic() < deadline, "some clients never saw their job end"
            time.sleep(0.2)
        for user, job_id, client in zip(users, jobs, clients, strict=True):
            seqs = [s for s in client.seen[job_id] if s]
            expected = len(service_events(stack, job_id))
            assert sorted(set(seqs)) == list(range(1, expected + 1)), job_id
            assert any(name in TERMINAL_EVENTS for name, _ in service_events(stack, job_id))
            assert user.get(f"/api/v1/jobs/{job_id}").json()["status"] == "succeeded"
        for client in clients:
            client.close()


def service_events(stack: Stack, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    with stack.app().app_context():
        from jobcast.runtime import current_runtime

        return current_runtime().events.history(job_id)


@pytest.mark.timeout(180)
def test_worker_killed_mid_job_is_redelivered_and_ends_once(tmp_path: Path) -> None:
    with _stack(
        tmp_path,
        JOBCAST_VISIBILITY_TIMEOUT="10",
        JOBCAST_BROKER_RESTORE_SECONDS="1",
        JOBCAST_JOB_LEASE_SECONDS="2",
    ) as stack:
        api = stack.api().signup()
        job = api.submit("test.chunks", {"chunks": 30, "chunk_ms": 100})
        api.wait_job(job["id"], until=lambda j: j["progress"] >= 20, timeout=30)
        worker = stack.process("worker-all")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        stack.start_process("worker-2", [sys.executable, "-m", "jobcast", "worker"])

        final = api.wait_job(job["id"], timeout=120)
        assert final["status"] == "succeeded" and final["attempts"] == 2
        events = service_events(stack, job["id"])
        started = [p["attempt"] for n, p in events if n == "job.started"]
        assert started == [1, 2]
        assert [n for n, _ in events].count("job.succeeded") == 1
        assert not any(n in ("job.failed", "job.cancelled") for n, _ in events)
        files = [p for p in stack.storage_dir.rglob("*") if p.is_file()]
        assert [f.name for f in files] == ["chunks.txt"]
        lines = files[0].read_text().splitlines()
        assert lines == [f"chunk {n} attempt 2" for n in range(1, 31)]


@pytest.mark.timeout(120)
def test_broker_down_at_submit_is_503_with_retry_after_and_leaves_no_job(
    tmp_path: Path, spare_redis: tuple[str, Any]
) -> None:
    url, proc = spare_redis
    with _stack(tmp_path, JOBCAST_BROKER_URL=url) as stack:
        api = stack.api().signup()
        assert api.wait_job(api.submit("demo.steps", {"steps": 1, "step_ms": 0})["id"])
        proc.kill()
        proc.wait()
        response = api.post("/api/v1/jobs", json={"type": "demo.steps", "params": {"steps": 1}})
        assert response.status_code == 503
        assert response.headers["Content-Type"] == "application/problem+json"
        assert int(response.headers["Retry-After"]) > 0
        assert len(api.get("/api/v1/jobs").json()["items"]) == 1


@pytest.mark.timeout(120)
def test_a_committed_job_whose_dispatch_never_happened_is_sent_by_the_sweeper(
    tmp_path: Path,
) -> None:
    with _stack(tmp_path) as stack:
        api: Api = stack.api().signup()
        user_id = api.get("/api/v1/me").json()["id"]
        job_id = "6d1f3a9e-59a4-4a55-9a3c-0c7b5f6f0e01"
        with stack.app().app_context():
            # What a web process leaves when it dies between the commit and the publish.
            job = Job(
                id="6d1f3a9e-59a4-4a55-9a3c-0c7b5f6f0e01",
                owner_id=str(user_id),
                type="demo.steps",
                params={"steps": 2, "step_ms": 10},
                status="queued",
                created_at=utcnow() - timedelta(minutes=5),
            )
            db.session.add(job)
            db.session.commit()
            assert recovery.redispatch_stuck(older_than_seconds=60) == 1
            assert recovery.redispatch_stuck(older_than_seconds=60) == 0
        final = api.wait_job(job_id)
        assert final["status"] == "succeeded" and final["attempts"] == 1


# --- the recovery sweep, in-process: a Redis no worker consumes, so its queue can be read ---


@pytest.fixture
def sweep_owner(tmp_path: Path, spare_redis: tuple[str, Any]) -> Iterator[int]:
    """Inside an app over ``spare_redis`` (test job types registered): a new user's id."""
    app = migrated_app(
        tmp_path, spare_redis[0], job_modules="jobcast.service.builtin,tests.faults.jobs"
    )
    with app.app_context():
        yield create_user("sweep@example.com", "correct horse battery").id


def _lost_attempt(owner: int, job_type: str, params: dict[str, Any], attempts: int = 1) -> Job:
    """A running job whose worker died: started, its lease gone, its row unchanged for a
    minute."""
    job, _ = service.submit(owner, job_type, params, None)
    for _ in range(attempts):
        started = lifecycle.start_attempt(job.id)
        assert started is not None
        job, lease = started
        lease.release()
    db.session.execute(
        update(Job).where(Job.id == job.id).values(updated_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Job, job.id)


def _queued_ids() -> list[str]:
    raw = current_runtime().redis.lrange("jobcast.io", 0, -1)
    return [json.loads(m)["headers"]["id"] for m in raw]  # type: ignore[union-attr]


def test_a_lost_attempt_is_sent_again_once_with_a_visible_retry(sweep_owner: int) -> None:
    job = _lost_attempt(sweep_owner, "demo.steps", {"steps": 1})
    stale = {"id": job.id, "attempts": job.attempts, "type": job.type}
    assert recovery.recover_lost() == 1
    db.session.expire_all()
    again = db.session.get(Job, stale["id"])
    assert again.status == "retrying" and again.error["type"] == "worker_lost"
    assert _queued_ids() == [job.id, job.id]  # the first message, consumed long ago, and this
    name, event = current_runtime().events.history(job.id)[-1]
    assert name == "job.retrying"
    assert (event["error"]["type"], event["attempt"]) == ("worker_lost", 1)
    # A second sweeper that read the same row before: its conditional update changes nothing.
    racing = Job(**{**stale, "status": "running"})
    assert (
        recovery.take_from_lost_attempt(racing, current_runtime().registry.get("demo.steps"))
        is None
    )
    assert recovery.recover_lost() == 0
    started = lifecycle.start_attempt(job.id)
    assert started is not None and started[0].attempts == 2
    started[1].release()


def test_a_live_or_just_started_attempt_is_left_alone(sweep_owner: int) -> None:
    job, _ = service.submit(sweep_owner, "demo.steps", {"steps": 1}, None)
    started = lifecycle.start_attempt(job.id)
    assert started is not None
    # Just started (its row fresh) and leased: twice not lost.
    assert recovery.recover_lost() == 0
    db.session.execute(
        update(Job).where(Job.id == job.id).values(updated_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    assert recovery.recover_lost() == 0  # stale row, live lease
    started[1].release()


@pytest.mark.parametrize(
    ("job_type", "params", "attempts", "why"),
    [
        ("faults.once", {"steps": 1}, 1, "must not run twice"),
        ("demo.steps", {"steps": 1}, 4, "retries are used up"),
    ],
)
def test_a_lost_attempt_that_may_not_run_again_fails_with_worker_lost(
    sweep_owner: int, job_type: str, params: dict[str, Any], attempts: int, why: str
) -> None:
    job = _lost_attempt(sweep_owner, job_type, params, attempts)
    assert recovery.recover_lost() == 1
    db.session.expire_all()
    failed = db.session.get(Job, job.id)
    assert failed.status == "failed" and failed.error["type"] == "worker_lost"
    assert why in failed.error["message"]
    assert _queued_ids() == [job.id]  # nothing sent again
    assert current_runtime().events.history(job.id)[-1][0] == "job.failed"


def test_email_send_is_declared_not_to_run_twice() -> None:
    from jobcast.jobs.registry import registry
    from jobcast.service.builtin import mailer  # noqa: F401  (registers email.send)

    email = registry.get("email.send")
    assert email is not None and not email.retry_lost


def test_a_queued_job_whose_message_redis_lost_is_sent_again(sweep_owner: int) -> None:
    kept, _ = service.submit(sweep_owner, "demo.steps", {"steps": 1}, None)
    lost, _ = service.submit(sweep_owner, "demo.steps", {"steps": 2}, None)
    redis = current_runtime().redis
    redis.lrem("jobcast.io", 0, redis.lrange("jobcast.io", 0, 0)[0])  # type: ignore[index]
    assert _queued_ids() == [kept.id]
    old = utcnow() - timedelta(minutes=5)
    db.session.execute(update(Job).values(created_at=old, dispatched_at=old))
    db.session.commit()
    assert recovery.recover_lost() == 1
    assert sorted(_queued_ids()) == sorted([kept.id, lost.id])
    assert recovery.recover_lost() == 0  # sent again, and present now


def test_the_run_task_retries_without_celerys_default_limit(sweep_owner: int) -> None:
    """A delivery that waits for a lease or for the database never runs out of retries: the
    job's own budget is counted in its row."""
    assert current_runtime().celery.tasks["jobcast.run"].max_retries is None
