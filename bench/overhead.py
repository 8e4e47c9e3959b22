"""``python -m bench overhead``: a no-op job through jobcast against a bare Celery no-op task.

One stack without a running worker and with
``JOBCAST_JOB_MODULES=jobcast.service.builtin,bench.noop``.
For each kind in turn (``--rounds`` times, alternating): queue ``--jobs`` of them while no worker
consumes, start ``jobcast worker --pool io`` (the gevent pool, ``JOBCAST_IO_CONCURRENCY``), wait
until all have run, stop the worker. Throughput is jobs / (last finished - first started), from
the servers' own clocks, so the worker's start-up and the queueing do not count. The worker's
CPU per job while the round runs is reported too: on a shared host it moves far less than the
throughput does.

- ``jobcast``: ``bench.noop`` submitted over the API (row, ``job.queued`` event); run = the
  task loads the row, moves it through started -> succeeded, publishes and logs those events;
- ``bare_celery``: ``bench.bare_noop`` sent with ``send_task`` to the same queue; run = Celery
  plus one pipelined Redis round trip that records the time.

``--telemetry off,metrics,tracing`` replaces the one ``jobcast`` kind by one per variant
(``bench.telemetry``), each with a web process and workers of its environment, alternating in
the same rounds; each variant's throughput is then compared with ``off``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from celery import Celery
from redis import Redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from bench.common import local_stack, machine, positive, say, signup, table
from bench.noop import BARE_KEYS
from bench.procfs import cpu_seconds, process_tree
from bench.telemetry import add_argument, environment, otlp_sink, overhead, sink_url, variants
from jobcast.jobs.registry import QUEUES

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=positive, default=500, help="jobs per round")
    # ``all`` puts every benchmark's options on one parser: ``submit`` already has --rounds.
    if "--rounds" not in parser._option_string_actions:
        parser.add_argument("--rounds", type=positive, default=2, help="jobcast/bare alternations")
    parser.add_argument("--concurrency", type=positive, default=50, help="JOBCAST_IO_CONCURRENCY")
    add_argument(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        "JOBCAST_JOB_MODULES": "jobcast.service.builtin,bench.noop",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JOBCAST_MAX_ACTIVE_JOBS": "100000",
        "JOBCAST_IO_CONCURRENCY": str(args.concurrency),
    }
    compared = variants(args.telemetry)
    kinds = [f"jobcast-{v}" for v in compared] or ["jobcast"]
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in [*kinds, "bare_celery"]}
    with (
        otlp_sink() as sink,
        local_stack("overhead", env_overrides=env, worker_pools=(), keep=args.keep) as stack,
    ):
        assert stack.redis_url is not None
        kind_env = {f"jobcast-{v}": environment(v, sink_url(sink)) for v in compared}
        webs = {kind: stack.start_web(name=f"web-{kind}", env=e) for kind, e in kind_env.items()}
        token = signup(stack.base_url, f"overhead-{uuid.uuid4().hex[:6]}@example.com")
        database = create_engine(
            stack.database_url or f"sqlite:///{stack.root / 'jobcast.db'}", poolclass=NullPool
        )
        sender = Celery("bench-sender", broker=stack.redis_url)
        redis = Redis.from_url(stack.redis_url, decode_responses=True)
        submitted = 0
        for index in range(args.rounds):
            for kind in rounds:
                if kind.startswith("jobcast"):
                    asyncio.run(_submit(webs.get(kind, stack.base_url), token, args.jobs))
                    submitted += args.jobs
                else:
                    redis.delete(*BARE_KEYS)
                    for _ in range(args.jobs):
                        sender.send_task("bench.bare_noop", queue=QUEUES["io"])
                worker = stack.start_process(
                    f"worker-{kind}-{index}",
                    [sys.executable, "-m", "jobcast", "worker", "--pool", "io"],
                    kind_env.get(kind),
                )
                try:
                    window, steady = _wait(
                        kind,
                        database,
                        redis,
                        submitted,
                        args.jobs,
                        lambda pid=worker.pid: cpu_seconds(list(process_tree(pid))),
                    )
                    cpu = cpu_seconds(list(process_tree(worker.pid)))
                finally:
                    worker.terminate()
                    worker.wait(timeout=30)
                result = {
                    "jobs": args.jobs,
                    "seconds": round(window, 3),
                    "per_second": round(args.jobs / window, 1) if window > 0 else None,
                    "worker_cpu_seconds_incl_startup": round(cpu, 2),
                    # Load on the host moves throughput a lot; CPU per job much less.
                    "worker_cpu_ms_per_job_running": steady,
                }
                rounds[kind].append(result)
                say(f"overhead {kind}: {result}")
        spans_exported = {"exports": sink.exports, "bytes": sink.bytes_received}
    best = {kind: max(r["per_second"] or 0 for r in rs) for kind, rs in rounds.items()}
    cpu_ms = {
        kind: min(
            (r["worker_cpu_ms_per_job_running"] for r in rs if r["worker_cpu_ms_per_job_running"]),
            default=None,
        )
        for kind, rs in rounds.items()
    }
    ratio = best[kinds[0]] / best["bare_celery"] if best["bare_celery"] else None
    table(
        "job overhead: no-op jobs per second through one gevent worker",
        [
            (kind, best[kind], [r["per_second"] for r in rs], cpu_ms[kind])
            for kind, rs in rounds.items()
        ],
        ("kind", "best jobs/s", "each round", "worker CPU ms/job"),
    )
    return {
        "benchmark": "overhead",
        "params": {"jobs": args.jobs, "rounds": args.rounds, "io_concurrency": args.concurrency},
        "machine": machine(),
        "per_second_best": best,
        "worker_cpu_ms_per_job_best": cpu_ms,
        "ratio_jobcast_to_bare": round(ratio, 3) if ratio else None,
        **_telemetry(compared, best, cpu_ms, spans_exported),
        "rounds": rounds,
    }


def _telemetry(
    compared: tuple[str, ...],
    best: dict[str, float],
    cpu_ms: dict[str, float | None],
    spans_exported: dict[str, int],
) -> dict[str, Any]:
    """Each variant's best jobs/s and CPU per job against ``off``'s, where ``off`` ran."""
    if "off" not in compared:
        return {}
    comparison = {
        variant: {
            "jobs_per_second": overhead(best[f"jobcast-{variant}"], best["jobcast-off"]),
            "worker_cpu_ms_per_job": overhead(cpu_ms[f"jobcast-{variant}"], cpu_ms["jobcast-off"]),
        }
        for variant in compared
        if variant != "off"
    }
    table(
        "telemetry on vs off (overhead % of jobs/s: negative is slower)",
        [
            (
                v,
                c["jobs_per_second"]["overhead_percent"],
                c["worker_cpu_ms_per_job"]["overhead_percent"],
            )
            for v, c in comparison.items()
        ],
        ("variant", "jobs/s vs off %", "worker CPU/job vs off %"),
    )
    return {"telemetry": {"compared_to_off": comparison, "otlp_sink": spans_exported}}


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


def _wait(
    kind: str, database: Engine, redis: Redis, total: int, jobs: int, cpu: Callable[[], float]
) -> tuple[float, float | None]:
    """Seconds between the first start and the last finish of this round's jobs, and the
    worker's CPU milliseconds per job while they ran (from the first poll that saw jobs done
    to the last: start-up and the idle end left out; None if the round was too quick)."""
    deadline = time.monotonic() + 300
    first: tuple[int, float] | None = None
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if kind == "bare_celery":
            count, first_key, last_key = BARE_KEYS
            done = int(redis.get(count) or 0)
            total = jobs
        else:
            with database.connect() as db:
                done = db.execute(
                    text(
                        "SELECT count(*) FROM jobcast_jobs"
                        " WHERE type = 'bench.noop' AND status = 'succeeded'"
                    )
                ).scalar_one()
        if done >= total:
            steady = None
            if first is not None and done > first[0]:
                steady = round(1000 * (cpu() - first[1]) / (done - first[0]), 3)
            if kind == "bare_celery":
                return float(redis.get(last_key) or 0) - float(redis.get(first_key) or 0), steady
            return _window(database, jobs), steady
        if first is None and done > total - jobs:
            first = (done, cpu())
    raise TimeoutError(f"{kind}: not all {jobs} jobs ran in 300 s")


def _window(database: Engine, jobs: int) -> float:
    with database.connect() as db:
        rows = db.execute(
            text(
                "SELECT started_at, finished_at FROM jobcast_jobs WHERE type = 'bench.noop'"
                " ORDER BY created_at DESC LIMIT :jobs"
            ),
            {"jobs": jobs},
        ).all()
    started = min(_when(s) for s, _ in rows)
    finished = max(_when(f) for _, f in rows)
    return finished - started


def _when(value: Any) -> float:
    """Seconds since the epoch of a stored UTC time: text from SQLite, a datetime from
    PostgreSQL."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
