"""N Socket.IO clients in this process, one ``demo.steps`` job each, every event timestamped.

``drive`` connects them (``socketio.AsyncClient``, websocket transport), has every client submit
its job over HTTP at about the same moment, and waits until each has seen every job of its
user end. What they received is judged in ``delivery``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from bench.common import TERMINAL_EVENTS, say
from bench.procfs import cpu_seconds, process_tree

CONNECT_PARALLEL = 50
#: How long past the jobs' nominal run time to wait for the last terminal event.
GRACE_SECONDS = 120


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
        if event in TERMINAL_EVENTS:
            self.terminal_jobs.add(payload["job_id"])

    def _on_disconnect(self, *_reason: Any) -> None:
        self.dropped = not self.closing

    async def close(self) -> None:
        self.closing = True
        await self.sio.disconnect()


@dataclass
class Run:
    """Everything one drive produced, for ``delivery`` to analyse."""

    clients: list[BenchClient]
    first_submit: float = 0.0
    #: When the last submit was answered: events after it do not share the web process with
    #: a burst of submits.
    all_submitted: float = 0.0
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


async def drive(
    base_url: str,
    tokens: list[str],
    params: dict[str, int],
    clients: int,
    pids: dict[str, int],
    *,
    api_url: str | None = None,
) -> Run:
    """Connect ``clients`` clients (sharing ``tokens`` round-robin) to ``base_url``, submit one
    job each with ``params`` to ``api_url`` (default: the same), wait for every terminal event;
    ``pids`` are the process trees to charge CPU to."""
    run = Run([BenchClient(i, i % len(tokens), tokens[i % len(tokens)]) for i in range(clients)])
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def connect(client: BenchClient) -> None:
        async with gate:
            await client.sio.connect(
                base_url, auth={"token": client.token}, transports=["websocket"], wait_timeout=30
            )

    say(f"connecting {len(run.clients)} Socket.IO clients")
    await asyncio.gather(*(connect(c) for c in run.clients))
    # Events are timed on arrival here, so a collector pause in this process would be counted as
    # jobcast's latency: 150-350 ms pauses at 1,000 clients. No collection while measuring.
    gc.collect()
    gc.disable()
    stop_lag = asyncio.Event()
    lag_task = asyncio.create_task(_loop_lag(run.lag_ms, stop_lag))
    cpu_before = _cpu(pids)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            say(f"submitting {len(run.clients)} demo.steps jobs {params}")
            run.first_submit = time.time()
            await asyncio.gather(
                *(_submit(http, api_url or base_url, c, params) for c in run.clients)
            )
            run.all_submitted = time.time()
        nominal = params["steps"] * params["step_ms"] / 1000
        deadline = time.monotonic() + nominal + GRACE_SECONDS
        while run.pending() and not run.timed_out:
            await asyncio.sleep(0.05)
            run.timed_out = time.monotonic() > deadline
    finally:
        cpu_after = _cpu(pids)
        stop_lag.set()
        await lag_task
        await asyncio.gather(*(c.close() for c in run.clients), return_exceptions=True)
        gc.enable()
    run.cpu = {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_before}
    return run


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


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    times = {name: cpu_seconds(list(process_tree(pid))) for name, pid in pids.items()}
    own = os.times()
    times["bench-clients"] = own.user + own.system
    return times


__all__ = ["BenchClient", "Run", "drive"]
