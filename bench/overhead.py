"""``python -m bench overhead``: a no-op job through jobcast against a bare Celery no-op task.

One stack without a running worker and with ``JOBCAST_JOB_MODULES=jobcast.builtin,bench.noop``.
For each kind in turn (``--rounds`` times, alternating): queue ``--jobs`` of them while no worker
consumes, start ``jobcast worker --pool io`` (the gevent pool, ``JOBCAST_IO_CONCURRENCY``), wait
until all have run, stop the worker. Throughput is jobs / (last finished - first started), from
the servers' own clocks, so the worker's start-up and the queueing do not count:

- ``jobcast``: ``bench.noop`` submitted over the API (row, ``job.queued`` event); run = the
  task loads the row, moves it through started -> succeeded, publishes and logs those events;
- ``bare_celery``: ``bench.bare_noop`` sent with ``send_task`` to the same queue; run = Celery
  plus one pipelined Redis round trip that records the time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from celery import Celery
from redis import Redis

from bench.common import local_stack, machine, positive, say, signup, table
from bench.noop import BARE_KEYS
from bench.procfs import cpu_seconds, process_tree
from jobcast.jobs.registry import QUEUES

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=positive, default=500, help="jobs per round")
    # ``all`` puts every benchmark's options on one parser: ``submit`` already has --rounds.
    if "--rounds" not in parser._option_string_actions:
        parser.add_argument("--rounds", type=positive, default=2, help="jobcast/bare alternations")
    parser.add_argument("--concurrency", type=positive, default=50, help="JOBCAST_IO_CONCURRENCY")


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        "JOBCAST_JOB_MODULES": "jobcast.builtin,bench.noop",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JOBCAST_MAX_ACTIVE_JOBS": "100000",
        "JOBCAST_IO_CONCURRENCY": str(args.concurrency),
    }
    rounds: dict[str, list[dict[str, Any]]] = {"jobcast": [], "bare_celery": []}
    with local_stack("overhead", env_overrides=env, worker_pools=(), keep=args.keep) as stack:
        assert stack.redis_url is not None
        token = signup(stack.base_url, f"overhead-{uuid.uuid4().hex[:6]}@example.com")
        database = stack.root / "jobcast.db"
        sender = Celery("bench-sender", broker=stack.redis_url)
        redis = Redis.from_url(stack.redis_url, decode_responses=True)
        for index in range(args.rounds):
            for kind in rounds:
                if kind == "jobcast":
                    asyncio.run(_submit(stack.base_url, token, args.jobs))
                else:
                    redis.delete(*BARE_KEYS)
                    for _ in range(args.jobs):
                        sender.send_task("bench.bare_noop", queue=QUEUES["io"])
                worker = stack.start_process(
                    f"worker-{kind}-{index}",
                    [sys.executable, "-m", "jobcast", "worker", "--pool", "io"],
                )
                cpu_tree = [worker.pid]
                try:
                    window = _wait(kind, database, redis, args.jobs * (index + 1), args.jobs)
                    cpu_tree = list(process_tree(worker.pid))
                    cpu = cpu_seconds(cpu_tree)
                finally:
                    worker.terminate()
                    worker.wait(timeout=30)
                result = {
                    "jobs": args.jobs,
                    "seconds": round(window, 3),
                    "per_second": round(args.jobs / window, 1) if window > 0 else None,
                    "worker_cpu_seconds_incl_startup": round(cpu, 2),
                }
                rounds[kind].append(result)
                say(f"overhead {kind}: {result}")
    best = {kind: max(r["per_second"] or 0 for r in rs) for kind, rs in rounds.items()}
    ratio = best["jobcast"] / best["bare_celery"] if best["bare_celery"] else None
    table(
        "job overhead: no-op jobs per second through one gevent worker",
        [(kind, best[kind], [r["per_second"] for r in rs]) for kind, rs in rounds.items()],
        ("kind", "best jobs/s", "each round"),
    )
    return {
        "benchmark": "overhead",
        "params": {"jobs": args.jobs, "rounds": args.rounds, "io_concurrency": args.concurrency},
        "machine": machine(),
        "per_second_best": best,
        "ratio_jobcast_to_bare": round(ratio, 3) if ratio else None,
        "rounds": rounds,
    }


async def _submit(base_url: str, token: str, jobs: int, parallel: int = 20) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"type": "bench.noop", "params": {}}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)

    async def poster(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            async with http.post(f"{base_url}/api/v1/jobs", json=body, headers=headers) as r:
                if r.status != 202:
                    raise RuntimeError(f"submit: HTTP {r.status} {await r.text()}")

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(poster(http) for _ in range(parallel)))


def _wait(kind: str, database: Path, redis: Redis, total: int, jobs: int) -> float:
    """Seconds between the first start and the last finish of this round's jobs."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if kind == "bare_celery":
            count, first, last = BARE_KEYS
            if int(redis.get(count) or 0) >= jobs:
                return float(redis.get(last) or 0) - float(redis.get(first) or 0)
            continue
        with sqlite3.connect(database) as db:
            done = db.execute(
                "SELECT count(*) FROM jobs WHERE type = 'bench.noop' AND status = 'succeeded'"
            ).fetchone()[0]
            if done < total:
                continue
            rows = db.execute(
                "SELECT started_at, finished_at FROM jobs WHERE type = 'bench.noop'"
                " ORDER BY created_at DESC LIMIT ?",
                (jobs,),
            ).fetchall()
        started = min(_when(s) for s, _ in rows)
        finished = max(_when(f) for _, f in rows)
        return finished - started
    raise TimeoutError(f"{kind}: not all {jobs} jobs ran in 300 s")


def _when(value: Any) -> float:
    return datetime.fromisoformat(str(value)).timestamp()
