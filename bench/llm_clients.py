"""The clients of ``bench llm``: N streams read at once on each side, and what they got.

``direct`` reads the reference route's SSE with aiohttp; ``jobcast`` connects one
``socketio.AsyncClient`` per user and submits one ``llm.chat`` job each. Both take the time of
every event's arrival first, on ``time.monotonic()``, the clock the provider process writes its
tokens' times on, and call the phase's ``start()`` after their warm-up and ``stop()`` once every
stream ended.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import socketio

from bench.common import TERMINAL_EVENTS, percentiles, say
from jobcast.llm.fake_provider import reply_for, split_tokens

#: How long past the streams' nominal length to wait for the last of them.
GRACE_SECONDS = 120
CONNECT_PARALLEL = 50


class Phase(Protocol):
    """The measured part of a run: between the warm-up and the last stream's end."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Stream:
    """One answer as its client received it: per event, its arrival, index, text, restart, and
    (jobcast) its ``ts``, when the worker published it (``time.time()``)."""

    prompt: str
    received: list[tuple[float, int, str, bool, float | None]] = field(default_factory=list)
    requested: float = 0.0
    ended: bool = False
    error: str | None = None

    @property
    def open(self) -> bool:
        return not self.ended and self.error is None


def warm_prompt() -> str:
    return f"LEN=5 warm-up {uuid.uuid4()}"


# --- direct: SSE straight from a Flask route ----------------------------------------------


async def read_direct(url: str, max_tokens: int, streams: list[Stream], phase: Phase) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        warm = Stream(warm_prompt())
        await _read_sse(http, url, warm, max_tokens)
        if not warm.ended:
            raise RuntimeError(f"direct: the warm-up stream did not end: {warm.error}")
        phase.start()
        await asyncio.gather(*(_read_sse(http, url, s, max_tokens) for s in streams))
        phase.stop()


async def _read_sse(http: aiohttp.ClientSession, url: str, stream: Stream, max_tokens: int) -> None:
    params = {"prompt": stream.prompt, "max_tokens": str(max_tokens)}
    index = 0
    stream.requested = time.monotonic()
    try:
        async with http.get(f"{url}/stream", params=params) as response:
            if response.status != 200:
                stream.error = f"HTTP {response.status}"
                return
            async for line in response.content:
                at = time.monotonic()  # the clock first: the rest is bookkeeping
                if line.startswith(b"event: end"):
                    stream.ended = True
                elif line.startswith(b"data: ") and not stream.ended:
                    text = json.loads(line[6:])
                    stream.received.append((at, index, text, False, None))
                    index += len(text)
    except (aiohttp.ClientError, TimeoutError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    if not stream.ended and stream.error is None:
        stream.error = "the stream ended without its end event"


# --- jobcast: llm.chat jobs, job.output over Socket.IO ------------------------------------


async def read_jobcast(
    base_url: str,
    tokens: list[str],
    warm_token: str,
    args: argparse.Namespace,
    streams: list[Stream],
    phase: Phase,
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await _warm_up(http, base_url, warm_token, args.tokens)
        listeners = [
            _Listener(stream, token) for stream, token in zip(streams, tokens, strict=True)
        ]
        gate = asyncio.Semaphore(CONNECT_PARALLEL)

        async def connect(listener: _Listener) -> None:
            async with gate:
                await listener.sio.connect(
                    base_url,
                    auth={"token": listener.token},
                    transports=["websocket"],
                    wait_timeout=30,
                )

        say(f"jobcast: connecting {len(listeners)} Socket.IO clients")
        await asyncio.gather(*(connect(listener) for listener in listeners))
        try:
            phase.start()
            await asyncio.gather(
                *(_submit(http, base_url, one.token, one.stream, args.tokens) for one in listeners)
            )
            deadline = time.monotonic() + args.tokens / args.rate + GRACE_SECONDS
            while any(s.open for s in streams) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            phase.stop()
        finally:
            await asyncio.gather(*(one.close() for one in listeners), return_exceptions=True)
    for stream in streams:
        if stream.open:
            stream.error = "no terminal event in time"


class _Listener:
    """One user's Socket.IO connection, recording its one job's output and end."""

    def __init__(self, stream: Stream, token: str) -> None:
        self.stream = stream
        self.token = token
        self.closing = False
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("job.output", self._output)
        self.sio.on("disconnect", self._disconnected)
        for event in TERMINAL_EVENTS:
            self.sio.on(event, lambda _payload, event=event: self._ended(event))

    def _output(self, payload: dict[str, Any]) -> None:
        at = time.monotonic()  # the clock first: the rest is bookkeeping
        restart = bool(payload.get("restart"))
        self.stream.received.append((at, payload["index"], payload["text"], restart, payload["ts"]))

    def _ended(self, event: str) -> None:
        if event == "job.succeeded":
            self.stream.ended = True
        else:
            self.stream.error = event

    def _disconnected(self, *_reason: Any) -> None:
        if not self.closing and self.stream.open:
            self.stream.error = "Socket.IO connection dropped"

    async def close(self) -> None:
        self.closing = True
        await self.sio.disconnect()


async def _submit(
    http: aiohttp.ClientSession, base_url: str, token: str, stream: Stream, max_tokens: int
) -> str | None:
    """POST an llm.chat job; a refusal is recorded on the stream, not raised."""
    body = {"type": "llm.chat", "params": {"prompt": stream.prompt, "max_tokens": max_tokens}}
    headers = {"Authorization": f"Bearer {token}"}
    stream.requested = time.monotonic()
    try:
        async with http.post(f"{base_url}/api/v1/jobs", json=body, headers=headers) as response:
            text = await response.text()
    except aiohttp.ClientError as exc:
        stream.error = f"submit: {type(exc).__name__}: {exc}"
        return None
    if response.status != 202:
        stream.error = f"submit: HTTP {response.status} {text[:200]}"
        return None
    job_id: str = json.loads(text)["id"]
    return job_id


async def _warm_up(http: aiohttp.ClientSession, base_url: str, token: str, tokens: int) -> None:
    """One short job first: the worker's first LLM job opens its provider client."""
    warm = Stream(warm_prompt())
    job_id = await _submit(http, base_url, token, warm, tokens)
    if job_id is None:
        raise RuntimeError(f"jobcast: the warm-up job was refused: {warm.error}")
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with http.get(f"{base_url}/api/v1/jobs/{job_id}", headers=headers) as response:
            status = (await response.json()).get("status")
        if status == "succeeded":
            return
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"jobcast: the warm-up job {status}")
        await asyncio.sleep(0.1)
    raise TimeoutError("jobcast: the warm-up job did not finish in 60 s")


# --- what the clients got -----------------------------------------------------------------


def analyse(streams: list[Stream], sent: dict[str, dict[int, float]]) -> dict[str, Any]:
    """Latency of each event against the provider's write of its last token (and of each of its
    tokens); tokens lost: the expected tokens past the part of the answer the client has right."""
    latency: list[float] = []
    every_token: list[float] = []
    # Where jobcast's share goes: provider -> the worker's publish -> the client.
    to_publish: list[float] = []
    from_publish: list[float] = []
    wall_to_monotonic = time.time() - time.monotonic()
    first_text: list[float] = []
    rates: list[float] = []
    expected_total = lost = completed = unmatched = restarts = 0
    errors: dict[str, int] = {}
    for stream in streams:
        expected = split_tokens(reply_for([{"role": "user", "content": stream.prompt}]))
        ends = list(itertools.accumulate(len(token) for token in expected))
        times = sent.get(stream.prompt, {})
        text = ""
        for at, index, piece, restart, published in stream.received:
            restarts += restart
            text = ("" if restart else text[:index]) + piece
            end = index + len(piece)
            last = bisect.bisect_left(ends, end)
            if last == len(ends) or ends[last] != end or last not in times:
                unmatched += 1
                continue
            latency.append((at - times[last]) * 1000)
            if published is not None:
                to_publish.append((published - wall_to_monotonic - times[last]) * 1000)
                from_publish.append((at - published + wall_to_monotonic) * 1000)
            first = bisect.bisect_right(ends, index)
            every_token.extend((at - times[k]) * 1000 for k in range(first, last + 1) if k in times)
        answer = "".join(expected)
        right = _common_prefix(text, answer)
        expected_total += len(expected)
        lost += len(ends) - bisect.bisect_right(ends, right)
        completed += stream.ended and text == answer
        if stream.error:
            errors[stream.error[:120]] = errors.get(stream.error[:120], 0) + 1
        if stream.received:
            first_text.append((stream.received[0][0] - stream.requested) * 1000)
        if len(stream.received) > 1:
            span = stream.received[-1][0] - stream.received[0][0]
            rates.append((len(stream.received) - 1) / span if span > 0 else 0.0)
    return {
        "latency_ms": percentiles(latency, 2),
        "every_token_latency_ms": percentiles(every_token, 2),
        **(
            {
                "provider_to_publish_ms": percentiles(to_publish, 2),
                "publish_to_client_ms": percentiles(from_publish, 2),
            }
            if to_publish
            else {}
        ),
        "events_per_stream_per_second": percentiles(rates, 1),
        "time_to_first_text_ms": percentiles(first_text, 1),
        "streams": len(streams),
        "streams_completed": completed,
        "tokens_expected": expected_total,
        "tokens_lost": lost,
        "events_received": sum(len(s.received) for s in streams),
        "events_unmatched": unmatched,
        "restarts": restarts,
        "errors": errors,
    }


def _common_prefix(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    return next(i for i in range(n) if a[i] != b[i])


__all__ = ["Phase", "Stream", "analyse", "read_direct", "read_jobcast", "warm_prompt"]
