"""The client process of ``bench idle``: holds many idle Socket.IO WebSocket connections.

Run by ``bench.idle`` as ``python -m bench.idle_clients URL TOKEN[,TOKEN...]``; it reads target
counts from stdin, one a line, opens connections until that many are up, and answers each line
with a JSON line on stdout (``connected``, ``failed``, ``dropped``, ``seconds``, ...).

Each connection speaks Engine.IO 4 / Socket.IO 5 over a bare aiohttp WebSocket (no
permessage-deflate) and only answers pings: a full ``socketio.AsyncClient`` costs the driving
process more memory and CPU than the server it is measuring, and this process has to hold
thousands of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

import aiohttp

from bench.procfs import rss_kb

CONNECT_PARALLEL = 100


class Holder:
    """Opens and holds connections; remembers how many are up and why the others are not."""

    def __init__(self, url: str, tokens: list[str]) -> None:
        self.ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.tokens = tokens
        self.opened = 0
        self.connected = 0
        self.failed = 0
        self.dropped = 0
        self.errors: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.session: aiohttp.ClientSession | None = None

    async def open(self, count: int) -> None:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, force_close=True)
            self.session = aiohttp.ClientSession(connector=connector)
        gate = asyncio.Semaphore(CONNECT_PARALLEL)
        started = [asyncio.get_running_loop().create_future() for _ in range(count)]
        for future in started:
            task = asyncio.create_task(self._hold(gate, future))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await asyncio.gather(*started)

    async def _hold(self, gate: asyncio.Semaphore, started: asyncio.Future[None]) -> None:
        assert self.session is not None
        # One user holds at most JOBCAST_MAX_SOCKETS_PER_USER connections: spread them.
        token = self.tokens[self.opened % len(self.tokens)]
        self.opened += 1
        up = False
        try:
            async with gate:
                ws = await self.session.ws_connect(
                    self.ws_url, compress=0, timeout=aiohttp.ClientWSTimeout(ws_close=30)
                )
                opening = await ws.receive_str(timeout=30)  # "0{sid, pingInterval, ...}"
                if not opening.startswith("0"):
                    raise RuntimeError(f"engine.io open: {opening[:60]}")
                await ws.send_str("40" + json.dumps({"token": token}))
                reply = await ws.receive_str(timeout=30)
                if not reply.startswith("40"):
                    raise RuntimeError(f"socket.io connect refused: {reply[:80]}")
            up = True
            self.connected += 1
            started.set_result(None)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                    await ws.send_str("3")
            self.connected -= 1
            self.dropped += 1
        except Exception as exc:  # every failure is counted, by kind
            if up:
                self.connected -= 1
                self.dropped += 1
            else:
                self.failed += 1
                key = f"{type(exc).__name__}: {str(exc)[:80]}"
                self.errors[key] = self.errors.get(key, 0) + 1
                started.set_result(None)


def raise_fd_limit() -> int:
    """Soft fd limit up to the hard one: each connection is one socket."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def main(url: str, tokens: list[str]) -> None:
    holder = Holder(url, tokens)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        target = int(line)
        started = time.monotonic()
        if target > holder.connected:
            await holder.open(target - holder.connected)
        report: dict[str, Any] = {
            "connected": holder.connected,
            "failed": holder.failed,
            "dropped": holder.dropped,
            "first_errors": dict(list(holder.errors.items())[:3]),
            "seconds": round(time.monotonic() - started, 2),
            "client_rss_mb": round(rss_kb(os.getpid()) / 1024, 1),
        }
        print(json.dumps(report), flush=True)
    for task in list(holder.tasks):
        task.cancel()
    if holder.session is not None:
        await holder.session.close()


if __name__ == "__main__":
    raise_fd_limit()
    asyncio.run(main(sys.argv[1], sys.argv[2].split(",")))
