"""Engine.IO heartbeats and reads under gevent, where jobcast drives them with two greenlets
per connection instead of four (realtime/lean_sockets.py): pings still come every interval, a
client that stops answering is still dropped, and what a client sends is still read."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import websocket

from jobcast.service.extensions import socketio
from jobcast.service.serving.lean_sockets import InlineWebSocketWSGI
from tests.integration.conftest import Stack

PING_INTERVAL = 1
PING_TIMEOUT = 3  # long enough that a busy machine does not drop the clients that answer


@pytest.fixture(scope="module")
def quick_pings(stack: Stack) -> str:
    """A web process of the session's stack that pings every second."""
    return stack.start_web(
        name="web-quick-pings",
        env={
            "JOBCAST_SOCKET_PING_INTERVAL": str(PING_INTERVAL),
            "JOBCAST_SOCKET_PING_TIMEOUT": str(PING_TIMEOUT),
        },
    )


@pytest.fixture
def engineio_ws(quick_pings: str) -> Iterator[websocket.WebSocket]:
    url = quick_pings.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=10)
    try:
        assert ws.recv().startswith("0{")  # Engine.IO's open packet
        yield ws
    finally:
        ws.close()


def test_the_server_pings_every_interval_while_the_client_answers(
    engineio_ws: websocket.WebSocket,
) -> None:
    pinged_at = []
    while len(pinged_at) < 4:
        assert engineio_ws.recv() == "2"
        pinged_at.append(time.monotonic())
        engineio_ws.send("3")
    gaps = [b - a for a, b in itertools.pairwise(pinged_at)]
    # One ping per interval after each pong: never early, never a missed cycle.
    assert all(PING_INTERVAL * 0.9 <= gap < PING_INTERVAL * 3 for gap in gaps), gaps


def test_a_client_that_stops_answering_pings_is_dropped(engineio_ws: websocket.WebSocket) -> None:
    assert engineio_ws.recv() == "2"
    started = time.monotonic()
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while time.monotonic() - started < 15:
            engineio_ws.recv()
    # Dropped for not answering: after the timeout, not at once and not never.
    assert PING_TIMEOUT * 0.8 <= time.monotonic() - started < 10


def test_what_the_client_sends_is_read_even_split_over_frames(
    engineio_ws: websocket.WebSocket,
) -> None:
    """The request greenlet reads the client's frames itself (there is no reader greenlet):
    a Socket.IO connect without a token, sent in two fragments, is read whole and refused."""
    engineio_ws.send_frame(websocket.ABNF.create_frame("4", websocket.ABNF.OPCODE_TEXT, fin=0))
    engineio_ws.send_frame(websocket.ABNF.create_frame("0", websocket.ABNF.OPCODE_CONT, fin=1))
    reply = engineio_ws.recv()
    while reply == "2":  # the server's own pings may come first
        engineio_ws.send("3")
        reply = engineio_ws.recv()
    assert reply.startswith("44"), reply  # Socket.IO's connect_error


def test_gevent_apps_serve_websockets_inline_and_threading_apps_do_not(stack: Stack) -> None:
    """The tests above pass against stock Engine.IO too; this pins that they ran against ours."""
    stack.app(async_mode="gevent")
    assert socketio.server.eio._async["websocket"] is InlineWebSocketWSGI
    stack.app(async_mode="threading")
    assert socketio.server.eio._async["websocket"] is not InlineWebSocketWSGI
