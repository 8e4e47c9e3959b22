"""`jobcast dev`: one command brings up everything, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from jobcast.procs import free_port


def _processes_mentioning(marker: str) -> list[int]:
    """Pids whose environment or command line mentions ``marker`` (our temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob:
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(240)
def test_dev_runs_a_job_end_to_end_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env["JOBCAST_IO_CONCURRENCY"] = "10"
    dev = subprocess.Popen(
        [sys.executable, "-m", "jobcast", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        output = ""
        assert dev.stdout is not None
        while "Ctrl-C" not in output:
            line = dev.stdout.readline()
            assert line, f"jobcast dev ended early: {output}"
            output += line
        assert f"http://127.0.0.1:{port}/" in output
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
        assert _processes_mentioning(str(tmp_path))
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=120)
    assert dev.returncode == 0
    assert _processes_mentioning(str(tmp_path)) == []
