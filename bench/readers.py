"""Four ways to read a finished job's whole history back, each timed and checked.

Each reader takes a ``Target`` and returns ``seconds`` (until the last event was in hand),
``events`` and a ``check`` of the seqs it got; the network ones add what they can tell apart
(first event, acknowledgement, end of stream) and this process's own CPU time, the client's
share of the cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio
from redis import Redis

from bench.common import TERMINAL_EVENTS, event_log

# The stream's key as the product writes it: private, but XRANGE of exactly it is the reference.
from jobcast.jobs.redis_events import log_key

TIMEOUT_SECONDS = 600
#: After the acknowledgement, how long to wait for replayed events still on their way.
STRAGGLER_SECONDS = 5


@dataclass(frozen=True)
class Target:
    """A finished job whose log holds ``events`` events, seq 1..events, and how to reach it."""

    base_url: str
    redis_url: str
    token: str
    job_id: str
    events: int


def check_seqs(seqs: list[int], expected: int) -> dict[str, Any]:
    """Did a reader get seq 1..expected, each once, in order?"""
    wanted = set(range(1, expected + 1))
    got = set(seqs)
    missing, unexpected, duplicates = len(wanted - got), len(got - wanted), len(seqs) - len(got)
    return {
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "in_order": all(a < b for a, b in itertools.pairwise(seqs)),
        "complete": missing == duplicates == unexpected == 0,
    }


def _since(start: float, instant: float | None) -> float | None:
    return None if instant is None else round(instant - start, 4)


async def socketio_resume(target: Target) -> dict[str, Any]:
    """A fresh connection asks for everything after seq 0 and gets it, then the ack."""
    received: list[tuple[float, str, dict[str, Any]]] = []
    all_in = asyncio.Event()

    def record(event: str, payload: dict[str, Any]) -> None:
        received.append((time.perf_counter(), event, payload))
        if len(received) >= target.events:
            all_in.set()

    sio = socketio.AsyncClient(reconnection=False)
    sio.on("*", record)
    auth = {"token": target.token}
    await sio.connect(target.base_url, auth=auth, transports=["websocket"], wait_timeout=30)
    try:
        cpu, started = time.process_time(), time.perf_counter()
        ack = await sio.call(
            "job.resume", {"job_id": target.job_id, "after_seq": 0}, timeout=TIMEOUT_SECONDS
        )
        acked = time.perf_counter()
        # The server acknowledges after emitting the replay on the same connection, so the
        # events are normally all in by now; a short grace for any still being dispatched.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), STRAGGLER_SECONDS)
        client_cpu = time.process_time() - cpu
    finally:
        await sio.disconnect()
    seqs = [p["seq"] for _, _, p in received if p.get("job_id") == target.job_id]
    return {
        "seconds": _since(started, received[-1][0] if received else None),
        "seconds_to_first_event": _since(started, received[0][0] if received else None),
        "seconds_to_ack": _since(started, acked),
        "events": len(seqs),
        "replayed_per_ack": ack.get("replayed") if isinstance(ack, dict) else None,
        "ack_error": ack.get("error") if isinstance(ack, dict) else repr(ack),
        "last_event": received[-1][1] if received else None,
        "client_cpu_seconds": round(client_cpu, 3),
        "check": check_seqs(seqs, target.events),
    }


async def sse(target: Target) -> dict[str, Any]:
    """GET the job's event stream from the start; the server ends it after the terminal event."""
    url = f"{target.base_url}/api/v1/jobs/{target.job_id}/events"
    headers = {"Authorization": f"Bearer {target.token}", "Accept": "text/event-stream"}
    seqs: list[int] = []
    names: list[str] = []
    id_mismatches = 0
    first = last = None
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        cpu, started = time.process_time(), time.perf_counter()
        async with http.get(url, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"SSE: HTTP {response.status} {await response.text()}")
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line:  # a field, or a comment (keep-alive) starting with ":"
                    name, _, value = line.partition(":")
                    if name:
                        fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:  # a blank line ends an event; "retry:" alone is none
                    last = time.perf_counter()
                    first = first or last
                    seqs.append(int(fields["id"].rpartition("-")[2]))  # <epoch>-<seq>
                    names.append(fields.get("event", "message"))
                    id_mismatches += json.loads(fields["data"]).get("seq") != seqs[-1]
                fields = {}
        ended = time.perf_counter()
        client_cpu = time.process_time() - cpu
    return {
        "seconds": _since(started, last),
        "seconds_to_first_event": _since(started, first),
        "seconds_to_end_of_stream": _since(started, ended),
        "events": len(seqs),
        "last_event": names[-1] if names else None,
        "ended_after_terminal": bool(names) and names[-1] in TERMINAL_EVENTS,
        "id_not_payload_seq": id_mismatches,
        "client_cpu_seconds": round(client_cpu, 3),
        "check": check_seqs(seqs, target.events),
    }


async def redis_xrange(target: Target) -> dict[str, Any]:
    """The floor: one XRANGE of the job's stream, straight from redis-py (connected first)."""
    redis = Redis.from_url(target.redis_url, decode_responses=True)
    redis.ping()
    started = time.perf_counter()
    entries = redis.xrange(log_key(target.job_id))
    seconds = time.perf_counter() - started
    seqs = [int(entry_id.split("-", 1)[1]) for entry_id, _ in entries]  # type: ignore[union-attr]
    redis.close()
    return {
        "seconds": round(seconds, 4),
        "events": len(seqs),
        "check": check_seqs(seqs, target.events),
    }


async def event_log_history(target: Target) -> dict[str, Any]:
    """What the server does for a resume before any network: XRANGE plus JSON decoding."""
    log = event_log(target.redis_url)
    log.redis.ping()
    started = time.perf_counter()
    history = log.history(target.job_id)
    seconds = time.perf_counter() - started
    seqs = [payload["seq"] for _, payload in history]
    log.redis.close()
    return {
        "seconds": round(seconds, 4),
        "events": len(seqs),
        "check": check_seqs(seqs, target.events),
    }


#: In the order each round runs them.
READERS: dict[str, Callable[[Target], Coroutine[Any, Any, dict[str, Any]]]] = {
    "socketio": socketio_resume,
    "sse": sse,
    "redis_xrange": redis_xrange,
    "event_log_history": event_log_history,
}

__all__ = ["READERS", "Target", "check_seqs"]
