"""``python -m bench replay``: how fast does a reconnecting client get a long job's history back?

One user runs one ``demo.steps`` job that records ``--events`` events (queued, started, one
progress per step, succeeded: steps = events - 3, ``step_ms`` 0) on a stack with
``JOBCAST_PROGRESS_INTERVAL=0``, so no progress is coalesced away. Once it has finished, its
whole history is read back ``--repeat`` times, each way in turn every round (so a noisy moment
on the host does not fall on one way only):

- Socket.IO: a fresh client connects, then emits ``job.resume`` {job_id, after_seq: 0}; timed
  from the emit to the last replayed event received (and to the acknowledgement);
- SSE: ``GET /api/v1/jobs/<id>/events`` with Bearer auth, timed from the request to the
  terminal event, after which the server ends the stream;
- the references, in this process: XRANGE of the same Redis stream with redis-py, and the same
  read through jobcast's own ``EventLog.history`` (XRANGE + JSON decoding).

Every Socket.IO and SSE read is checked: seq 1..N, each once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any, cast

import requests
from redis import Redis

from bench.common import event_log, local_stack, log_errors, machine, positive, say, signup, table
from bench.procfs import cpu_seconds, process_tree
from bench.readers import READERS, Target
from jobcast.jobs import states
from jobcast.service.builtin.demo import StepsParams

#: Events of a demo.steps job besides its progress: queued, started, succeeded.
FRAME_EVENTS = 3
MAX_STEPS = 10_000
TIMEOUT_SECONDS = 600
#: The Redis commands counted during each read: what the server did to answer it.
COMMANDS = ("xrange", "xread", "publish")


def events_count(text: str) -> int:
    """An argparse type: how many events one demo.steps job can record."""
    value = positive(text)
    if not FRAME_EVENTS < value <= MAX_STEPS + FRAME_EVENTS:
        raise argparse.ArgumentTypeError(
            f"must be between {FRAME_EVENTS + 1} and {MAX_STEPS + FRAME_EVENTS}"
            f" (demo.steps allows at most {MAX_STEPS} steps), got {value}"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=events_count, default=10_000, help="events the job records"
    )
    parser.add_argument("--repeat", type=positive, default=5, help="reads of the history each way")


def run(args: argparse.Namespace) -> dict[str, Any]:
    # Fail here, not in the job, if demo.steps's limit moves.
    StepsParams(steps=args.events - FRAME_EVENTS, step_ms=0)
    overrides = {"JOBCAST_PROGRESS_INTERVAL": "0", "JOBCAST_DURABLE_EVENTS": "true"}
    with local_stack(
        "replay", env_overrides=overrides, worker_pools=("io",), keep=args.keep
    ) as stack:
        assert stack.redis_url is not None
        token = signup(stack.base_url, f"bench-{uuid.uuid4().hex[:6]}@example.com")
        job = _produce(stack.base_url, stack.redis_url, token, args.events - FRAME_EVENTS)
        target = Target(stack.base_url, stack.redis_url, token, job["id"], args.events)
        tries = _read_back(target, stack.process("web").pid, args.repeat)
        server_errors = log_errors(stack.logs)
    reads = {way: _median_of(results) for way, results in tries.items()}
    xrange = reads["redis_xrange"]["seconds"]
    document = {
        "benchmark": "replay",
        "params": {
            "events": args.events,
            "steps": args.events - FRAME_EVENTS,
            "step_ms": 0,
            "progress_interval": 0,
            "repeat": args.repeat,
            "transport": "websocket",
        },
        "machine": machine(),
        "job": job,
        **reads,
        "ratio_to_redis_xrange": {
            way: _ratio(reads[way]["seconds"], xrange) for way in READERS if way != "redis_xrange"
        },
        "server_errors": server_errors,
    }
    _print(document)
    return document


def _read_back(target: Target, web_pid: int, repeat: int) -> dict[str, list[dict[str, Any]]]:
    """Every way, ``repeat`` rounds; each try also says what the web process and Redis did."""
    redis = Redis.from_url(target.redis_url)
    tries: dict[str, list[dict[str, Any]]] = {way: [] for way in READERS}
    for round_no in range(1, repeat + 1):
        say(f"round {round_no} of {repeat}: reading {target.events:,} events back")
        for way, read in READERS.items():
            web_cpu, calls = cpu_seconds(list(process_tree(web_pid))), _redis_calls(redis)
            result = asyncio.run(read(target))
            web_cpu = cpu_seconds(list(process_tree(web_pid))) - web_cpu
            after = _redis_calls(redis)
            result["web_cpu_seconds"] = round(web_cpu, 2)
            result["redis_calls"] = {c: after.get(c, 0) - calls.get(c, 0) for c in COMMANDS}
            tries[way].append(result)
    return tries


def _ratio(seconds: float | None, reference: float | None) -> float | None:
    return round(seconds / reference, 1) if seconds is not None and reference else None


def _produce(base_url: str, redis_url: str, token: str, steps: int) -> dict[str, Any]:
    """Run the job to its end: how long the worker took to record its events, and how many
    the log holds."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    say(f"running demo.steps with {steps:,} steps of 0 ms")
    body: dict[str, Any] = {"type": "demo.steps", "params": {"steps": steps, "step_ms": 0}}
    started = time.perf_counter()
    response = http.post(f"{base_url}/api/v1/jobs", json=body, timeout=60)
    if response.status_code != 202:
        raise RuntimeError(f"submit: HTTP {response.status_code} {response.text}")
    job_id: str = response.json()["id"]
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        job = http.get(f"{base_url}/api/v1/jobs/{job_id}", timeout=60).json()
        if job["status"] not in states.ACTIVE:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {TIMEOUT_SECONDS} s")
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
    logged = len(event_log(redis_url).history(job_id))
    memory = cast(dict[str, Any], Redis.from_url(redis_url).info("memory"))
    return {
        "id": job_id,
        "status": job["status"],
        "submit_to_succeeded_seconds": round(seconds, 3),
        "events_logged": logged,
        "events_recorded_per_second": round(logged / seconds, 1),
        "redis_used_memory_mb": round(memory["used_memory"] / 2**20, 1),
    }


def _redis_calls(redis: Redis) -> dict[str, int]:
    """Calls per command so far on the server (``INFO commandstats``)."""
    stats = cast(dict[str, dict[str, Any]], redis.info("commandstats"))
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


def _median_of(tries: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number the tries report, whether every try was complete, and each
    try as it was."""
    summary: dict[str, Any] = {}
    for key in tries[0]:
        values = [t[key] for t in tries if _is_number(t.get(key))]
        if not values:
            continue
        if all(isinstance(v, int) for v in values):  # counts stay whole
            summary[key] = statistics.median_low(values)
        else:
            summary[key] = round(statistics.median(values), 4)
    # The fastest try is the least disturbed by the rest of the host (timeit's reasoning).
    summary["seconds_best"] = min((t["seconds"] for t in tries if t["seconds"]), default=None)
    if "check" in tries[0]:
        summary["complete"] = all(t["check"]["complete"] for t in tries)
    return {**summary, "tries": tries}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _print(document: dict[str, Any]) -> None:
    rows = []
    for way in READERS:
        read = document[way]
        rows.append(
            [
                way,
                read.get("seconds"),
                read.get("seconds_best"),
                read.get("seconds_to_ack"),
                read["events"],
                read.get("complete"),
                read["web_cpu_seconds"],
                document["ratio_to_redis_xrange"].get(way),
            ]
        )
    header = ["read", "median s", "best s", "to ack", "events", "complete", "web cpu", "x xrange"]
    job = document["job"]
    title = (
        f"replay of {document['params']['events']:,} events (median of"
        f" {document['params']['repeat']}); the job recorded them in"
        f" {job['submit_to_succeeded_seconds']} s"
    )
    table(title, rows, header)
