"""Scale-out: two web processes and two workers share one Redis and one database; a client
connected to either web process receives its user's events, wherever the job runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Stack
from tests.integration.support import Listener

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
