"""The floor under jobcast's event latency: bare Redis pub/sub on the same server.

As many small timestamped JSON messages as a benchmark's clients received, published from this
process in bursts shaped like N jobs reporting together, received by a subscriber in another
process (so its event loop is not the publisher's). Whatever jobcast adds above this is its own.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

from redis import Redis

from bench.common import percentiles

#: A subscriber that hears nothing for this long gives up and reports what it has.
IDLE_SECONDS = 30


def redis_floor(redis_url: str, count: int, burst: int, period: float) -> dict[str, Any]:
    """Publish ``count`` messages, ``burst`` every ``period`` s, to a subscriber in another
    process; the latencies it measured, and how fast this process could publish."""
    channel = f"bench-floor-{uuid.uuid4().hex[:8]}"
    mp = multiprocessing.get_context("spawn")
    ready = mp.Event()
    receive, send = mp.Pipe(duplex=False)
    proc = mp.Process(
        target=_subscriber, args=(redis_url, channel, count, ready, send), daemon=True
    )
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the floor subscriber did not subscribe in 30 s")
        sent, publish_seconds = _publish(Redis.from_url(redis_url), channel, count, burst, period)
        latencies: list[float] = receive.recv() if receive.poll(IDLE_SECONDS * 2) else []
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


def _publish(
    redis: Redis, channel: str, count: int, burst: int, period: float
) -> tuple[int, float]:
    """Bursts on a fixed schedule (a late burst does not push the later ones back)."""
    payload = {"job_id": str(uuid.uuid4()), "status": "running", "message": "step 1 of 20"}
    start, sent = time.monotonic(), 0
    for round_no in range(1, count // burst + 2):
        for _ in range(min(burst, count - sent)):
            sent += 1
            message = {**payload, "seq": sent, "progress": 5.0, "ts": time.time()}
            redis.publish(channel, json.dumps(message, separators=(",", ":")))
        if sent >= count:
            break
        time.sleep(max(0.0, start + round_no * period - time.monotonic()))
    return sent, time.monotonic() - start


def _subscriber(redis_url: str, channel: str, count: int, ready: Any, out: Connection) -> None:
    """In its own process: receive ``count`` messages and send back their latencies (ms)."""
    pubsub = Redis.from_url(redis_url).pubsub()
    pubsub.subscribe(channel)
    while (pubsub.get_message(timeout=5) or {}).get("type") != "subscribe":
        pass
    ready.set()
    latencies: list[float] = []
    idle_until = time.monotonic() + IDLE_SECONDS
    while len(latencies) < count and time.monotonic() < idle_until:
        message = pubsub.get_message(timeout=1)
        if message is not None and message["type"] == "message":
            received = time.time()
            latencies.append((received - json.loads(message["data"])["ts"]) * 1000)
            idle_until = time.monotonic() + IDLE_SECONDS
    out.send(latencies)
    out.close()


__all__ = ["redis_floor"]
