"""``python -m bench latency``: how late do job events reach many Socket.IO clients at once?

N clients (one process, ``socketio.AsyncClient`` over asyncio, websocket transport) connect to
a LocalStack, each submits one ``demo.steps`` job at about the same moment, and every event
received is timed as ``receive time - payload["ts"]`` (``ts`` is taken in the publishing
process right before the event is recorded and emitted). The same run then measures the floor:
plain Redis pub/sub on the same server, with as many messages in the same bursts, received by
a separate process.

Nothing is lost if, for every job a client should see, it got every ``seq`` the durable event
log holds, ending with a terminal event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import socketio
from redis import Redis

from bench.common import (
    cpu_seconds,
    local_stack,
    log_errors,
    machine,
    percentiles,
    positive,
    process_tree,
    say,
    signup_many,
    table,
)
from jobcast.jobs.events import EventPublisher

TERMINAL = frozenset({"job.succeeded", "job.failed", "job.cancelled"})
CONNECT_PARALLEL = 50
#: The delivery numbers the stderr table shows, in order.
SUMMARY = (
    "events_received",
    "events_expected",
    "lost",
    "duplicates",
    "foreign_events",
    "clients_dropped",
    "max_jobs_running_at_once",
    "wall_seconds",
    "events_per_second",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=positive, default=200, help="Socket.IO clients and jobs")
    parser.add_argument(
        "--users",
        type=positive,
        default=None,
        help="distinct users the clients share round-robin; None: one per client, so each"
        " client sees only its own job",
    )
    parser.add_argument("--steps", type=positive, default=20, help="demo.steps: steps per job")
    parser.add_argument("--step-ms", type=positive, default=100, help="demo.steps: ms per step")


@dataclass
class BenchClient:
    """One Socket.IO connection that records every event with its arrival time."""

    index: int
    user: int
    token: str
    sio: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False)
    )
    received: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    terminal_jobs: set[str] = field(default_factory=set)
    dropped: bool = False
    closing: bool = False
    job_id: str | None = None
    submit_ms: float | None = None
    submit_error: str | None = None

    def __post_init__(self) -> None:
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self._on_disconnect)

    def _record(self, event: str, payload: dict[str, Any]) -> None:
        # The clock first: everything after this is bookkeeping, not latency.
        self.received.append((time.time(), event, payload))
        if event in TERMINAL:
            self.terminal_jobs.add(payload["job_id"])

    def _on_disconnect(self, *_reason: Any) -> None:
        self.dropped = not self.closing

    async def close(self) -> None:
        self.closing = True
        await self.sio.disconnect()


async def _submit(
    http: aiohttp.ClientSession, base_url: str, client: BenchClient, params: dict[str, int]
) -> None:
    """POST the job; a refusal is recorded, not raised: how many fail is part of the result."""
    body = {"type": "demo.steps", "params": params}
    headers = {"Authorization": f"Bearer {client.token}"}
    started = time.perf_counter()
    try:
        async with http.post(f"{base_url}/api/v1/jobs", json=body, headers=headers) as response:
            text = await response.text()
    except aiohttp.ClientError as exc:
        client.submit_error = f"{type(exc).__name__}: {exc}"
        return
    client.submit_ms = (time.perf_counter() - started) * 1000
    if response.status == 202:
        client.job_id = json.loads(text)["id"]
    else:  # problem+json: group by title, not by the request id in the detail
        title = json.loads(text).get("title") if text.startswith("{") else text[:100]
        client.submit_error = f"HTTP {response.status} {title}"


async def _loop_lag(samples: list[float], stop: asyncio.Event, period: float = 0.01) -> None:
    """How late this process's event loop wakes up: the clients' own share of the latency."""
    while not stop.is_set():
        expected = time.perf_counter() + period
        await asyncio.sleep(period)
        samples.append(max(0.0, time.perf_counter() - expected) * 1000)


@dataclass
class Run:
    clients: list[BenchClient]
    first_submit: float = 0.0
    lag_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    _jobs_of_user: dict[int, set[str]] = field(default_factory=dict)

    def jobs_for(self, client: BenchClient) -> set[str]:
        """The accepted jobs ``client`` should see: every job of its user (once submitted)."""
        if not self._jobs_of_user:
            for c in self.clients:
                self._jobs_of_user.setdefault(c.user, set()).update([c.job_id] if c.job_id else [])
        return self._jobs_of_user[client.user]

    def pending(self) -> bool:
        # Runs on the event loop while events arrive: keep it to set lookups.
        return any(not c.dropped and not self.jobs_for(c) <= c.terminal_jobs for c in self.clients)


async def _drive(
    base_url: str, tokens: list[str], args: argparse.Namespace, pids: dict[str, int]
) -> Run:
    run = Run(
        [BenchClient(i, i % len(tokens), tokens[i % len(tokens)]) for i in range(args.clients)]
    )
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def connect(client: BenchClient) -> None:
        async with gate:
            await client.sio.connect(
                base_url, auth={"token": client.token}, transports=["websocket"], wait_timeout=30
            )

    say(f"connecting {len(run.clients)} Socket.IO clients")
    await asyncio.gather(*(connect(c) for c in run.clients))
    params = {"steps": args.steps, "step_ms": args.step_ms}
    stop_lag = asyncio.Event()
    lag_task = asyncio.create_task(_loop_lag(run.lag_ms, stop_lag))
    cpu_before = _cpu(pids)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            say(f"submitting {len(run.clients)} demo.steps jobs {params}")
            run.first_submit = time.time()
            await asyncio.gather(*(_submit(http, base_url, c, params) for c in run.clients))
        deadline = time.monotonic() + args.steps * args.step_ms / 1000 + 120
        while run.pending() and not run.timed_out:
            await asyncio.sleep(0.05)
            run.timed_out = time.monotonic() > deadline
    finally:
        cpu_after = _cpu(pids)
        stop_lag.set()
        await lag_task
        await asyncio.gather(*(c.close() for c in run.clients), return_exceptions=True)
    run.cpu = {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_before}
    return run


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    times = {name: cpu_seconds(list(process_tree(pid))) for name, pid in pids.items()}
    own = os.times()
    times["bench-clients"] = own.user + own.system
    return times


def _analyse(run: Run, history: dict[str, list[int]]) -> dict[str, Any]:
    """Latency and completeness, per client, against the durable log of each job."""
    latencies: list[float] = []
    by_event: dict[str, list[float]] = defaultdict(list)
    expected = missing = duplicates = foreign = no_terminal = 0
    last_receive = run.first_submit
    for c in run.clients:
        mine = run.jobs_for(c)
        seqs: dict[str, list[int]] = defaultdict(list)
        for received, event, payload in c.received:
            if payload.get("job_id") not in mine:
                foreign += 1
                continue
            ms = (received - payload["ts"]) * 1000
            latencies.append(ms)
            by_event[event].append(ms)
            seqs[payload["job_id"]].append(payload["seq"])
            last_receive = max(last_receive, received)
        terminal = {p["job_id"]: p["seq"] for _, e, p in c.received if e in TERMINAL}
        for job_id in mine:
            got = seqs.get(job_id, [])
            # The durable log is the truth; where it is off, the terminal event's seq is.
            logged = history.get(job_id) or list(range(1, terminal.get(job_id, 0) + 1))
            expected += len(logged)
            missing += len(set(logged) - set(got))
            duplicates += len(got) - len(set(got))
            no_terminal += job_id not in terminal
    received_total = len(latencies)
    wall = last_receive - run.first_submit
    return {
        "jobs": _outcomes(run),
        "latency_ms": percentiles(latencies),
        "latency_ms_by_event": {e: percentiles(v) for e, v in sorted(by_event.items())},
        "events_received": received_total,
        "events_expected": expected,
        "lost": missing + no_terminal,
        "lost_events": missing,
        "jobs_without_terminal": no_terminal,
        "duplicates": duplicates,
        "foreign_events": foreign,
        "clients_dropped": sum(c.dropped for c in run.clients),
        "timed_out": run.timed_out,
        "wall_seconds": round(wall, 3),
        "events_per_second": round(received_total / wall, 1) if wall > 0 else None,
    }


def _outcomes(run: Run) -> dict[str, Any]:
    """How many jobs were accepted and how each ended, with the distinct reasons why not."""
    refusals = Counter(c.submit_error for c in run.clients if c.submit_error)
    ended: dict[str, tuple[str, dict[str, Any]]] = {}
    for c in run.clients:
        for _, event, payload in c.received:
            if event in TERMINAL:
                ended[payload["job_id"]] = (event, payload)
    errors = Counter(
        json.dumps(p.get("error"), sort_keys=True)
        for e, p in ended.values()
        if e != "job.succeeded"
    )
    return {
        "submitted": len(run.clients),
        "accepted": sum(c.job_id is not None for c in run.clients),
        "refused": sum(refusals.values()),
        "refusal_reasons": dict(refusals.most_common(3)),
        **{
            e.removeprefix("job."): sum(n == e for n, _ in ended.values()) for e in sorted(TERMINAL)
        },
        "failure_reasons": dict(errors.most_common(3)),
    }


def _job_timings(run: Run) -> dict[str, Any]:
    """From the events' own timestamps: did every job start at once and run its nominal time?"""
    first: dict[str, dict[str, float]] = defaultdict(dict)
    for c in run.clients:
        for _, event, payload in c.received:
            first[payload["job_id"]].setdefault(event, payload["ts"])
    queued_to_started, spans = [], []
    for events in first.values():
        if "job.queued" in events and "job.started" in events:
            queued_to_started.append((events["job.started"] - events["job.queued"]) * 1000)
        finished = next((events[e] for e in TERMINAL if e in events), None)
        if "job.started" in events and finished is not None:
            spans.append((events["job.started"], finished))
    started_to_finished = [end - start for start, end in spans]
    return {
        "max_jobs_running_at_once": _max_overlap(spans),
        "submit_http_ms": percentiles([c.submit_ms for c in run.clients if c.submit_ms]),
        "queued_to_started_ms": percentiles(queued_to_started),
        "started_to_finished_s": percentiles(started_to_finished),
        "client_loop_lag_ms": percentiles(run.lag_ms),
        "cpu_seconds": run.cpu,
    }


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most (start, end) spans open at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


# --- the floor: bare Redis pub/sub --------------------------------------------------------


def _floor_subscriber(
    redis_url: str, channel: str, count: int, ready: Any, out: Connection
) -> None:
    """In its own process: receive ``count`` messages and send back their latencies (ms)."""
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    pubsub.subscribe(channel)
    while (pubsub.get_message(timeout=5) or {}).get("type") != "subscribe":
        pass
    ready.set()
    latencies: list[float] = []
    idle_until = time.monotonic() + 30
    while len(latencies) < count and time.monotonic() < idle_until:
        message = pubsub.get_message(timeout=1)
        if message is not None and message["type"] == "message":
            received = time.time()
            latencies.append((received - json.loads(message["data"])["ts"]) * 1000)
            idle_until = time.monotonic() + 30
    out.send(latencies)
    out.close()


def redis_floor(redis_url: str, count: int, burst: int, period: float) -> dict[str, Any]:
    """Publish ``count`` small timestamped JSON messages, ``burst`` every ``period`` s (the
    shape of N jobs reporting progress together), to a subscriber in another process."""
    channel = f"bench-floor-{uuid.uuid4().hex[:8]}"
    mp = multiprocessing.get_context("spawn")
    ready = mp.Event()
    receive, send = mp.Pipe(duplex=False)
    proc = mp.Process(
        target=_floor_subscriber, args=(redis_url, channel, count, ready, send), daemon=True
    )
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the floor subscriber did not subscribe in 30 s")
        redis = Redis.from_url(redis_url)
        payload = {"job_id": str(uuid.uuid4()), "status": "running", "message": "step 1 of 20"}
        start, sent = time.monotonic(), 0
        for round_no in range(1, count // burst + 2):
            for _ in range(min(burst, count - sent)):
                sent += 1
                message = {**payload, "seq": sent, "progress": 5.0, "ts": time.time()}
                redis.publish(channel, json.dumps(message, separators=(",", ":")))
            pause = start + round_no * period - time.monotonic()
            if sent >= count:
                break
            time.sleep(max(0.0, pause))
        publish_seconds = time.monotonic() - start
        latencies: list[float] = receive.recv() if receive.poll(60) else []
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return {
        "latency_ms": percentiles(latencies),
        "messages_sent": sent,
        "messages_received": len(latencies),
        "burst": burst,
        "period_ms": round(period * 1000),
        "messages_per_second": round(sent / publish_seconds, 1) if publish_seconds else None,
    }


# --- the benchmark ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    clients, users = args.clients, args.users or args.clients
    overrides = {
        # Every job must run at once, and every websocket holds one web thread.
        "JOBCAST_IO_CONCURRENCY": str(max(clients, 1)),
        "JOBCAST_WEB_THREADS": str(max(500, clients + 100)),
    }
    with local_stack(
        "latency", env_overrides=overrides, worker_pools=("io",), keep=args.keep
    ) as stack:
        say(f"signing up {users} users")
        run_id = uuid.uuid4().hex[:6]
        tokens = signup_many(
            stack.base_url, [f"bench-{run_id}-{i}@example.com" for i in range(users)]
        )
        pids = {name: stack.process(name).pid for name in ("web", "worker-io", "redis")}
        result = asyncio.run(_drive(stack.base_url, tokens, args, pids))
        assert stack.redis_url is not None
        redis = Redis.from_url(stack.redis_url, decode_responses=True)
        log = EventPublisher(redis, _NoEmitter(), retention_seconds=3600)
        history = {
            c.job_id: [p["seq"] for _, p in log.history(c.job_id)]
            for c in result.clients
            if c.job_id
        }
        jobcast = {**_analyse(result, history), **_job_timings(result)}
        jobcast["server_errors"] = log_errors(stack.logs)
        received = jobcast["events_received"] or 1
        say(f"measuring the Redis pub/sub floor with {received} messages")
        floor = redis_floor(stack.redis_url, received, burst=clients, period=args.step_ms / 1000)
    document = {
        "benchmark": "latency",
        "params": {
            "clients": clients,
            "users": users,
            "steps": args.steps,
            "step_ms": args.step_ms,
            "transport": "websocket",
            "io_concurrency": int(overrides["JOBCAST_IO_CONCURRENCY"]),
            "web_threads": int(overrides["JOBCAST_WEB_THREADS"]),
        },
        "machine": machine(),
        "jobcast": jobcast,
        "redis_floor": floor,
    }
    _print(document)
    return document


class _NoEmitter:
    """Reading the event log needs a publisher; this one never emits."""

    def emit(self, *_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the benchmark only reads event logs")


def _print(document: dict[str, Any]) -> None:
    jc, floor = document["jobcast"], document["redis_floor"]
    rows = [
        ["jobcast: worker -> client", *_quantiles(jc["latency_ms"])],
        *[[f"  {event}", *_quantiles(stats)] for event, stats in jc["latency_ms_by_event"].items()],
        ["redis pub/sub floor", *_quantiles(floor["latency_ms"])],
        ["client event-loop lag", *_quantiles(jc["client_loop_lag_ms"])],
    ]
    table("event latency (ms)", rows, ["path", "count", "p50", "p95", "p99", "max"])
    jobs = jc["jobs"]
    summary = [[f"jobs {key}", jobs[key]] for key in ("accepted", "refused", "succeeded", "failed")]
    summary += [[key, jc[key]] for key in SUMMARY]
    summary += [[f"cpu s: {name}", secs] for name, secs in jc["cpu_seconds"].items()]
    table("delivery", summary, ["what", "value"])


def _quantiles(stats: dict[str, Any]) -> list[Any]:
    return [stats["count"], stats["p50"], stats["p95"], stats["p99"], stats["max"]]


__all__ = ["add_arguments", "redis_floor", "run"]
