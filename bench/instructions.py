"""``python -m bench instructions``: CPU instructions per submit beside a bare ``.delay()`` route.

On a shared host the submit benchmark's requests per second, and even its CPU milliseconds per
request, swing by a third between identical runs, which hides any change smaller than that.
Instructions executed do not swing: ``valgrind --tool=callgrind`` counts them, and counts the
same again whatever else the machine is doing. Each target runs in a child Python under
callgrind twice, once with only the warm-up requests and once with ``--requests`` more; the
difference divided by ``--requests`` is what one request costs.

- ``jobcast``: ``POST /api/v1/jobs`` through Flask's test client into the app, with the bench
  stack's settings (rate limits off, the cap raised), SQLite, and a Redis of its own: JWT,
  validation, the insert, the broker message and the ``job.queued`` event;
- ``bare_delay``: ``bench.bare_app``'s route, which calls ``.delay()``, the same way.

Both run in-process: gunicorn, gevent and the socket work are not counted, so the ratio is that
of the application code alone. Needs valgrind (Debian's ``valgrind`` package).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import machine, positive, say, table

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 50
TARGETS = ("jobcast", "bare_delay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--requests", type=positive, default=200, help="requests counted per target"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        say("instructions: valgrind is not installed (apt-get install valgrind); skipped")
        return {"benchmark": "instructions", "skipped": "valgrind is not installed"}
    runs = [(target, count) for target in TARGETS for count in (0, args.requests)]
    say(f"instructions: {len(runs)} runs under callgrind, two at a time (minutes)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = dict(zip(runs, pool.map(lambda r: _count(valgrind, *r), runs), strict=True))
    per_request = {
        target: round((counted[(target, args.requests)] - counted[(target, 0)]) / args.requests)
        for target in TARGETS
    }
    ratio = per_request["bare_delay"] / per_request["jobcast"]
    table(
        f"instructions per request (callgrind, in-process, {args.requests} requests)",
        [(target, f"{per_request[target]:,}") for target in TARGETS],
        ("target", "instructions"),
    )
    return {
        "benchmark": "instructions",
        "params": {"requests": args.requests, "warm_up": WARM_UP},
        "machine": machine(),
        "instructions_per_request": per_request,
        "ratio_bare_to_jobcast": round(ratio, 3),
        "instructions_total": {f"{t}/{n}": v for (t, n), v in counted.items()},
    }


def _count(valgrind: str, target: str, requests: int) -> int:
    """Instructions callgrind counted for a child that makes WARM_UP + ``requests`` requests."""
    with tempfile.TemporaryDirectory(prefix="jobcast-bench-instructions-") as tmp:
        out = Path(tmp) / "callgrind.out"
        argv = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
        argv += [sys.executable, "-m", "bench.instructions", target, str(requests), tmp]
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"{target} under callgrind failed:\n{done.stderr[-3000:]}")
        for line in done.stderr.splitlines():
            if "Collected :" in line:
                return int(line.rsplit(":", 1)[1].strip())
        raise RuntimeError(f"callgrind printed no total for {target}:\n{done.stderr[-3000:]}")


def _child(target: str, requests: int, tmp: Path) -> None:
    """Make the requests, in this process (the one callgrind counts)."""
    from jobcast.service.procs import free_port, redis_server_command, wait_for_port

    port = free_port()
    redis = subprocess.Popen(redis_server_command(port, tmp, persist=False))
    try:
        wait_for_port("127.0.0.1", port)
        redis_url = f"redis://127.0.0.1:{port}/0"
        post = _jobcast_poster(redis_url, tmp) if target == "jobcast" else _bare_poster(redis_url)
        for i in range(WARM_UP + requests):
            post(i)
    finally:
        redis.kill()
        redis.wait()


def _jobcast_poster(redis_url: str, tmp: Path) -> Any:
    from jobcast import create_app
    from jobcast.service import migrate
    from jobcast.service.auth.tokens import issue_tokens
    from jobcast.service.auth.users import create_user

    app = create_app(
        {
            "env": "development",
            "log_level": "WARNING",
            "rate_limits": False,
            "max_active_jobs": 100_000,
            "redis_url": redis_url,
            "database_url": f"sqlite:///{tmp}/jobcast.db",
            "storage_dir": tmp / "results",
        }
    )
    with app.app_context():
        migrate.upgrade()
        users = [create_user(f"u{i}@example.com", "correct horse battery").id for i in range(10)]
        headers = [{"Authorization": f"Bearer {issue_tokens(u)['access_token']}"} for u in users]
    client = app.test_client()
    body = {"type": "demo.steps", "params": {"steps": 1, "step_ms": 0}}

    def post(i: int) -> None:
        response = client.post("/api/v1/jobs", json=body, headers=headers[i % len(headers)])
        assert response.status_code == 202, response.text

    return post


def _bare_poster(redis_url: str) -> Any:
    os.environ["BENCH_REDIS_URL"] = redis_url
    from bench.bare_app import app

    client = app.test_client()

    def post(_i: int) -> None:
        response = client.post("/delay")
        assert response.status_code == 202, response.text

    return post


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
