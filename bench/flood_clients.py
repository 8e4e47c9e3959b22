"""The client process of ``bench flood``: N Socket.IO connections that count what they receive.

Run by ``bench.flood`` as ``python -m bench.flood_clients`` with a JSON config on stdin
(``urls``: web base URLs, connections go round-robin; ``tokens``: one per connection). It prints
``{"ready": n}`` once every connection is accepted, then, when a line arrives on stdin or every
connection has seen a terminal event, one JSON line: per connection the seqs received, and the
first and last arrival times. Bare aiohttp WebSockets speaking Engine.IO 4 / Socket.IO 5, as in
``bench.idle_clients``: a full ``socketio.AsyncClient`` would cost more CPU than the server.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

from bench.common import TERMINAL_EVENTS

CONNECT_PARALLEL = 50


class Counter:
    """One connection: the seqs it received, and when the first and the last came."""

    def __init__(self, url: str, token: str) -> None:
        self.ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.token = token
        self.seqs: list[int] = []
        self.first: float | None = None
        self.last: float | None = None
        self.done = asyncio.Event()

    async def connect(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(self.ws_url, compress=0)
        opening = await ws.receive_str(timeout=30)
        if not opening.startswith("0"):
            raise RuntimeError(f"engine.io open: {opening[:60]}")
        await ws.send_str("40" + json.dumps({"token": self.token}))
        reply = await ws.receive_str(timeout=30)
        if not reply.startswith("40"):
            raise RuntimeError(f"socket.io connect refused: {reply[:80]}")
        return ws

    async def listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = message.data
            if data == "2":
                await ws.send_str("3")
            elif data.startswith("42"):
                now = time.time()
                event, payload = json.loads(data[2:])
                self.first = self.first or now
                self.last = now
                self.seqs.append(payload["seq"])
                if event in TERMINAL_EVENTS:
                    self.done.set()

    def report(self) -> dict[str, Any]:
        return {"seqs": self.seqs, "first": self.first, "last": self.last}


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    urls, tokens = config["urls"], config["tokens"]
    counters = [Counter(urls[i % len(urls)], token) for i, token in enumerate(tokens)]
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(CONNECT_PARALLEL)

        async def connect(counter: Counter) -> aiohttp.ClientWebSocketResponse:
            async with gate:
                return await counter.connect(session)

        sockets = await asyncio.gather(*(connect(c) for c in counters))
        listeners = [
            asyncio.create_task(c.listen(ws)) for c, ws in zip(counters, sockets, strict=True)
        ]
        print(json.dumps({"ready": len(sockets)}), flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, sys.stdin.readline)
        everyone = asyncio.gather(*(c.done.wait() for c in counters))
        await asyncio.wait([stop, everyone], return_when=asyncio.FIRST_COMPLETED)
        print(json.dumps([c.report() for c in counters]), flush=True)
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()


if __name__ == "__main__":
    asyncio.run(main())
