"""The database goes away for a few seconds under running and queued jobs: every job still ends.

A private PostgreSQL cluster (started as its own non-root user on a free port) is stopped with
``-m immediate``, as a crash would, and started again 4 s later. Workers keep running their
jobs (a progress write that fails is skipped: the events carry the progress), retry each job's
outcome until the database is back, and retry starting the jobs delivered meanwhile.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobcast.service.procs import free_port, wait_for_port
from tests.faults.conftest import FaultStack, check_events, wait_until
from tests.integration.support import Api


@dataclass
class Cluster:
    bindir: Path
    data: Path
    port: int
    user: str | None  # run as this user (PostgreSQL refuses to run as root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-l", str(self.data.parent / "postgres.log"), "-o", options, "-w", "start")
        wait_for_port("127.0.0.1", self.port)

    def crash(self) -> None:
        self.ctl("-m", "immediate", "stop")


@pytest.fixture
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster of the test's own, or a skip saying why there cannot be one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.skip("needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
    bindir = Path(found[-1]).parent
    user = None
    base = Path(tempfile.mkdtemp(prefix="jobcast-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no postgres user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root, and runuser is missing")
        user = "postgres"
        os.chown(base, account.pw_uid, account.pw_gid)
    cluster = Cluster(bindir, base / "data", free_port(), user)
    initdb = [str(bindir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres"]
    subprocess.run(
        ["runuser", "-u", user, "--", *initdb] if user else initdb,
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster.crash()
        shutil.rmtree(base, ignore_errors=True)


def _statuses(api: Api, job_ids: list[str]) -> list[str]:
    """Each job's status, "unknown" while the API cannot read it."""
    found = []
    for job_id in job_ids:
        response = api.get(f"/api/v1/jobs/{job_id}")
        found.append(response.json()["status"] if response.status_code == 200 else "unknown")
    return found


@pytest.mark.timeout(240)
@pytest.mark.parametrize("outage_seconds", [4.0, 30.0])
def test_a_database_blip_leaves_no_job_queued_or_running(
    postgres: Cluster, fault_stack: Callable[..., FaultStack], outage_seconds: float
) -> None:
    """Within the outcome retry budget (JOBCAST_DB_RETRY_SECONDS, 30 s) every outcome is
    written as it was; past it an attempt may be left to the recovery sweep and run again."""
    stack = fault_stack(database_url=postgres.url, JOBCAST_IO_CONCURRENCY="6")
    api = stack.api().signup()
    jobs = [api.submit("demo.steps", {"steps": 30, "step_ms": 100})["id"] for _ in range(10)]
    wait_until(lambda: _statuses(api, jobs).count("running") == 6, 30, "6 jobs running")
    time.sleep(1.0)
    postgres.crash()
    time.sleep(outage_seconds)  # the running jobs end meanwhile; the queued ones are delivered
    postgres.start()
    back = time.monotonic()
    wait_until(
        lambda: set(_statuses(api, jobs)) <= {"succeeded", "failed", "cancelled"},
        90,
        "every job terminal",
    )
    recovery = time.monotonic() - back
    final = _statuses(api, jobs)
    print(
        f"\nPostgreSQL down {outage_seconds:g} s under 6 running and 4 queued jobs:"
        f" all terminal {recovery:.1f} s after it was back ({final.count('succeeded')} succeeded)"
    )
    assert final == ["succeeded"] * len(jobs), f"{final} after {recovery:.1f} s"
    for job_id in jobs:
        if outage_seconds < 20:
            # Each outcome was written once the database was back: nothing ran twice.
            assert api.get(f"/api/v1/jobs/{job_id}").json()["attempts"] == 1
        check_events(stack, job_id)
