"""Idle WebSockets under gevent: two greenlets per connection where the libraries keep four.

Out of the box every Engine.IO WebSocket holds four greenlets under gevent: the request's,
simple-websocket's reader, Engine.IO's writer and a ping greenlet asleep for the ping interval.
Each parked greenlet keeps a copy of its C stack and a page of Python frame stack, which made
them over half of an idle connection's memory (docs/performance.md). Two of them do nothing the
request greenlet or the event loop cannot do:

* the reader: the request greenlet only waits for what the reader reads, so it reads itself
  (:class:`InlineWebSocket`);
* the ping: a libev timer sends it (:func:`schedule_ping_on_timer`).

Both stay inside the libraries' own seams where there is one: Engine.IO takes its WebSocket
class from the server's async driver table, and simple-websocket does its protocol work in
``_handle_events``, which is reused as is. The ping has no seam: ``Socket.schedule_ping`` is
replaced, and ``tests/integration/test_lean_sockets.py`` holds the behaviour it must keep.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import engineio.socket
import gevent
import gevent.event
import simple_websocket
from engineio import packet
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from wsproto.utilities import LocalProtocolError

log = logging.getLogger(__name__)


class _NoThread:
    """simple-websocket's reader thread, made redundant: the request greenlet reads instead."""

    name = "inline-reader"

    def __init__(self, target: Any) -> None:
        pass

    def start(self) -> None:
        pass


class InlineWebSocket(simple_websocket.Server):
    """A simple-websocket server connection read by whoever calls :meth:`receive`.

    Engine.IO has exactly one reader per connection (the request greenlet's loop), so reading
    in ``receive`` loses nothing; the writer greenlet sends concurrently, as before.
    """

    def receive(self, timeout: float | None = None) -> Any:
        with gevent.Timeout(timeout, False):
            while self.connected and not self.input_buffer:
                self._read_once()
        if self.input_buffer:
            return self.input_buffer.pop(0)
        if not self.connected:
            raise simple_websocket.ConnectionClosed(self.close_reason, self.close_message)
        return None

    def _read_once(self) -> None:
        """One pass of simple-websocket's reader loop (which runs without its own pings)."""
        try:
            data = self.sock.recv(self.receive_bytes)
            if not data:
                raise OSError("connection closed by the client")
            self.ws.receive_data(data)
            self.connected = self._handle_events()
        except (OSError, LocalProtocolError):
            self.connected = False
        if not self.connected:
            self.sock.close()


class InlineWebSocketWSGI(SimpleWebSocketWSGI):
    """Engine.IO's gevent WebSocket adapter, building :class:`InlineWebSocket` connections."""

    def __init__(self, handler: Any, server: Any) -> None:
        super().__init__(
            handler,
            server,
            thread_class=_NoThread,
            event_class=gevent.event.Event,
            # Close (1009) as soon as a message outgrows the limit, not once it is all buffered.
            max_message_size=server.max_http_buffer_size,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.ws = InlineWebSocket(environ, **self.server_args)
        ret = self.app(self)
        # As Engine.IO's own adapter: the server must not write a response on the connection.
        if self.ws.mode == "gunicorn":
            raise StopIteration()
        if self.ws.mode == "werkzeug":
            raise ConnectionError()
        return ret


_schedule_ping_in_greenlet = engineio.socket.Socket.schedule_ping


def schedule_ping_on_timer(sock: engineio.socket.Socket) -> None:
    """Engine.IO's ``schedule_ping`` with a timer where it starts a greenlet that sleeps.

    Servers in other async modes (tests build several apps in one process) keep the original.
    """
    if sock.server.async_mode != "gevent":
        _schedule_ping_in_greenlet(sock)
        return
    if not sock.last_ping:
        return  # the previous ping cycle has not completed
    sock.last_ping = None
    timer = gevent.get_hub().loop.timer(sock.server.ping_interval)
    timer.start(_send_ping, sock, timer)


def _send_ping(sock: engineio.socket.Socket, timer: Any) -> None:
    timer.close()
    if sock.closing or sock.closed:
        return
    sock.last_ping = time.time()
    try:
        sock.send(packet.Packet(packet.PING))
    except Exception:  # a hub callback must not raise: the loop would print and go on
        log.exception("engine.io ping to %s failed", sock.sid)


def use_lean_sockets(eio_server: Any) -> None:
    """Serve ``eio_server``'s WebSockets with two greenlets each, the request's and Engine.IO's
    writer (gevent mode only)."""
    eio_server._async = {**eio_server._async, "websocket": InlineWebSocketWSGI}
    engineio.socket.Socket.schedule_ping = schedule_ping_on_timer
