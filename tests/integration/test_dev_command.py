"""`jobcast dev`: one command brings up everything, and nothing outlives it.

The processes of one test are those carrying its marker in their environment or command line
(every child inherits it) and every descendant of its ``jobcast dev`` ever seen (Redis writes its
process title over its environment); whatever a failing test leaves behind is killed by the
``procs`` fixture.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from jobcast.service.procs import free_port

MARKER = "JOBCAST_DEV_TEST_MARKER"


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), fields[19]


@dataclass
class Processes:
    marker: str
    seen: dict[int, str] = field(default_factory=dict)  # pid -> start time

    def scan(self, dev: int | None = None) -> list[int]:
        """Record this test's running processes (``dev``'s descendants among them); return
        those of all recorded ones that still run."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or (pid := int(entry.name)) == os.getpid():
                continue
            if (stat := _stat(pid)) is None or stat[0] == "Z":
                continue
            parents[pid] = stat[1]
            with contextlib.suppress(OSError):
                blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
                if self.marker.encode() in blob:
                    self.seen[pid] = stat[2]
        family = {dev} if dev is not None else set()
        while grown := {p for p, parent in parents.items() if parent in family} - family:
            family |= grown
        for pid in family & parents.keys():
            if (stat := _stat(pid)) is not None:
                self.seen.setdefault(pid, stat[2])
        return self.running()

    def running(self) -> list[int]:
        return [
            pid
            for pid, started in self.seen.items()
            if (stat := _stat(pid)) is not None and stat[0] not in "ZX" and stat[2] == started
        ]

    def gone_within(self, timeout: float) -> list[str]:
        """The command lines of the recorded processes still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := self.scan()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [_command_line(pid) for pid in left]


def _command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return f"{pid}: " + b" ".join(argv).decode(errors="replace")[:160]
    return f"{pid}: (gone)"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    tracked = Processes(str(tmp_path))
    yield tracked
    for pid in tracked.scan():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _dev_env(marker: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env[MARKER] = marker
    env["JOBCAST_IO_CONCURRENCY"] = "10"
    env["JOBCAST_CPU_CONCURRENCY"] = "2"
    env.update(settings)
    return env


def _start_dev(cwd: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """``jobcast dev`` in a session of its own, as a terminal would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobcast", "dev", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=(cwd / "dev.out").open("w"),
        stderr=(cwd / "dev.err").open("w"),
        text=True,
        start_new_session=True,
    )


def _wait_for_banner(dev: subprocess.Popen[str], cwd: Path, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while "Ctrl-C" not in (output := (cwd / "dev.out").read_text()):
        tail = (cwd / "dev.err").read_text()[-3000:]
        assert dev.poll() is None, f"jobcast dev ended early ({dev.returncode}): {output}{tail}"
        assert time.monotonic() < deadline, f"no banner after {timeout} s: {output}{tail}"
        time.sleep(0.2)
    return output


def _run_dev_expecting_refusal(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jobcast", "dev", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert done.stdout == ""
    assert not (cwd / "instance").exists(), "something was started before the refusal"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.timeout(300)
def test_dev_runs_a_job_end_to_end_and_ctrl_c_stops_every_process(
    tmp_path: Path, procs: Processes
) -> None:
    port = free_port()
    dev = _start_dev(tmp_path, port, _dev_env(procs.marker))
    try:
        output = _wait_for_banner(dev, tmp_path)
        assert f"http://127.0.0.1:{port}/" in output
        redis_url = (tmp_path / "instance" / "redis-url.txt").read_text().strip()
        assert f"  redis: {redis_url} " in output
        email, password = re.search(r"demo account: (\S+) / (\S+)", output).groups()  # type: ignore[union-attr]

        base = f"http://127.0.0.1:{port}"
        tokens = requests.post(
            f"{base}/api/v1/auth/login", json={"email": email, "password": password}, timeout=10
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        job = requests.post(
            f"{base}/api/v1/jobs",
            headers=auth,
            timeout=10,
            json={"type": "demo.steps", "params": {"steps": 2, "step_ms": 10}},
        ).json()
        deadline = time.monotonic() + 60
        while (
            status := requests.get(
                f"{base}/api/v1/jobs/{job['id']}", headers=auth, timeout=10
            ).json()["status"]
        ) != "succeeded":
            assert time.monotonic() < deadline, f"demo job still {status}"
            time.sleep(0.2)
        assert (tmp_path / "instance" / "jobcast.db").exists()
        assert procs.scan(dev.pid)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=120)
    assert dev.returncode == 0
    assert procs.gone_within(0) == []
    assert not (tmp_path / "instance" / "redis-url.txt").exists()


@pytest.mark.timeout(300)
def test_a_closed_terminal_sighup_stops_every_process(tmp_path: Path, procs: Processes) -> None:
    dev = _start_dev(tmp_path, free_port(), _dev_env(procs.marker))
    try:
        _wait_for_banner(dev, tmp_path)
        assert len(procs.scan(dev.pid)) >= 7
        # The terminal hangs up its foreground process group: dev alone, its children have
        # sessions of their own.
        os.killpg(dev.pid, signal.SIGHUP)
        dev.wait(timeout=120)
    finally:
        dev.kill()
        dev.wait()
    assert dev.returncode == 0
    assert procs.gone_within(10) == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("async_mode", ["gevent", "threading"])
def test_nothing_outlives_dev_killed_with_sigkill(
    tmp_path: Path, procs: Processes, async_mode: str
) -> None:
    env = _dev_env(procs.marker, JOBCAST_ASYNC_MODE=async_mode)
    dev = _start_dev(tmp_path, free_port(), env)
    try:
        _wait_for_banner(dev, tmp_path)
        # dev, Redis, gunicorn's arbiter and its worker, two Celery workers, the cpu worker's
        # two pool children, beat: wait for the last of them to fork.
        deadline = time.monotonic() + 60
        while len(found := procs.scan(dev.pid)) < 9:
            assert time.monotonic() < deadline, [_command_line(pid) for pid in found]
            time.sleep(0.2)
        assert any("redis-server" in _command_line(pid) for pid in found)
    finally:
        dev.kill()
        dev.wait()
    assert procs.gone_within(20) == []


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path, procs: Processes) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _run_dev_expecting_refusal(tmp_path, _dev_env(procs.marker), "--port", str(port))
    assert line == (
        f"Error: port {port} on 127.0.0.1 is in use (another jobcast dev?); stop it or pass --port"
    )


def test_an_unreachable_redis_is_refused_before_anything_starts(
    tmp_path: Path, procs: Processes
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = _dev_env(procs.marker, JOBCAST_REDIS_URL=url)
    line = _run_dev_expecting_refusal(tmp_path, env, "--port", str(free_port()))
    assert line.startswith(f"Error: JOBCAST_REDIS_URL {url} does not answer PING (")
    assert "unset JOBCAST_REDIS_URL" in line


@pytest.mark.timeout(300)
def test_a_stack_that_never_gets_ready_says_which_part_and_stops(
    tmp_path: Path, procs: Processes
) -> None:
    env = _dev_env(procs.marker, JOBCAST_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    port = str(free_port())
    dev = subprocess.Popen(
        [sys.executable, "-m", "jobcast", "dev", "--port", port, "--ready-timeout", "20"],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "dev.out").open("w"),
        stderr=(tmp_path / "dev.err").open("w"),
    )
    try:
        deadline = time.monotonic() + 200
        while dev.poll() is None and time.monotonic() < deadline:
            procs.scan(dev.pid)
            time.sleep(0.5)
    finally:
        dev.kill()
        dev.wait()
    err = (tmp_path / "dev.err").read_text()
    assert dev.returncode == 1
    assert "running at" not in (tmp_path / "dev.out").read_text()
    reason = (
        r"^Error: not ready after 20 s: GET \S+/readyz: broker unavailable; stopped everything$"
    )
    assert re.search(reason, err, re.MULTILINE), err[-3000:]
    assert procs.gone_within(10) == []
