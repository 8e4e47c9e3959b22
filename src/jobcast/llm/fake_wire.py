"""The fake provider's HTTP side: the request handler and OpenAI's wire framing.

``fake_provider`` decides what to answer (the reply, the faults, the record of each request);
this module writes it the way OpenAI does, token by token, and notices a client hanging up
mid-stream. Apart because that socket-level code is most of the fake and changes for other
reasons. It asks the provider it serves (``Server.provider``) for every answer, so it never
imports ``fake_provider`` at run time and the two do not import each other.

Streams are written with HTTP/1.1 chunked encoding by hand rather than as a close-delimited body,
so a dropped connection reaches every client (requests, httpx, the openai SDK) as an incomplete
body instead of a clean end of stream.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from jobcast.llm.fake_provider import FakeProvider, Fault, Seen

MODEL = "fake-model"
#: How often a waiting stream looks at whether the provider is stopping.
STOP_POLL = 0.05
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """The error JSON OpenAI sends with ``status``."""
    kind, code = _ERROR_KINDS.get(status, ("server_error", None))
    text = message or f"Fake provider error {status} ({responses.get(status, 'Error')})"
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


@dataclass(frozen=True)
class _Frames:
    """The fields every chunk of one answer shares, and the chunks built from them."""

    id: str
    created: int
    model: str
    include_usage: bool

    @classmethod
    def for_request(cls, body: dict[str, Any]) -> _Frames:
        options = body.get("stream_options")
        return cls(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=str(body.get("model") or MODEL),
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        )

    def _base(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        frame = self._base("chat.completion.chunk") | {"choices": [choice]}
        # OpenAI marks every chunk's usage as null when a usage chunk is coming.
        return frame | {"usage": None} if self.include_usage else frame

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return self._base("chat.completion.chunk") | {"choices": [], "usage": usage}

    def completion(self, text: str, finish_reason: str, usage: dict[str, int]) -> dict[str, Any]:
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        return self._base("chat.completion") | {"choices": [choice], "usage": usage}


class _ClientGone(ConnectionError):
    """The client hung up while the server was waiting to write."""


class _Stopping(Exception):
    """The provider is stopping; answers in flight end where they are."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients connect at once for concurrent streams; the default backlog of 5 turns such a
    # burst into SYN retries that cost whole seconds.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def hang_up_all(self) -> None:
        """Shut every open connection: idle keep-alive threads and streams end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up is routine for this server, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jobcast-fake-provider"

    @property
    def _server(self) -> Server:
        return cast(Server, self.server)

    def setup(self) -> None:
        super().setup()
        self._watch = selectors.DefaultSelector()
        self._watch.register(self.connection, selectors.EVENT_READ)
        self._server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._watch.close()
            self._server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and benchmarks start thousands of requests."""

    def do_GET(self) -> None:
        if not self._authorized():
            self._send_json(401, error_body(401, "Incorrect API key provided."))
        elif self.path.split("?")[0] == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._send_json(404, error_body(404, f"Unknown path {self.path!r}."))

    def do_POST(self) -> None:
        body = self._read_json()
        if self.path.split("?")[0] != "/v1/chat/completions":
            self._send_json(404, error_body(404, f"Unknown path {self.path!r}."))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        provider = self._server.provider
        seen = provider._begin(body or {}, headers)
        if not self._authorized():
            self._answer(seen, refusal=(401, "Incorrect API key provided."))
        elif body is None or not isinstance(body.get("messages"), list):
            self._answer(seen, refusal=(400, "Expected a JSON body with 'messages'."))
        else:
            seen.fault = provider._next_fault()
            self._answer(seen, seen.fault)

    def _answer(
        self, seen: Seen, fault: Fault | None = None, refusal: tuple[int, str] | None = None
    ) -> None:
        """Answer as ``fault`` says (None: normally), or refuse with a (status, message)."""
        try:
            if refusal is not None:
                status, message = refusal
                self._send_status(seen, status, error_body(status, message))
            elif fault is not None and fault.kind == "status":
                body = fault.body or error_body(fault.status)
                self._send_status(seen, fault.status, body, fault.retry_after)
            elif seen.body.get("stream"):
                self._stream(seen, fault)
            else:
                self._complete(seen, fault)
        except _Stopping:
            self._drop()
        except OSError:
            # A write failed or the peer's EOF showed up while we waited: the client went away.
            seen.client_closed = not self._server.stopping.is_set()
            self.close_connection = True
        finally:
            seen.ended = time.monotonic()

    def _send_status(
        self,
        seen: Seen,
        status: int,
        payload: dict[str, Any],
        retry_after: float | None = None,
    ) -> None:
        seen.status = status
        extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._send_json(status, payload, extra)

    def _complete(self, seen: Seen, fault: Fault | None) -> None:
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None:
            self._pause(fault.seconds)
        provider = self._server.provider
        tokens, finish = provider._plan(seen.body)
        frames = _Frames.for_request(seen.body)
        usage = provider._usage(seen.body, len(tokens))
        self._send_json(200, frames.completion("".join(tokens), finish, usage))
        seen.tokens_sent = len(tokens)

    def _stream(self, seen: Seen, fault: Fault | None) -> None:
        provider = self._server.provider
        tokens, finish = provider._plan(seen.body)
        frames = _Frames.for_request(seen.body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(frames.chunk({"role": "assistant", "content": ""}))
        if not self._send_tokens(seen, fault, tokens, frames):
            return
        self._event(frames.chunk({}, finish))
        if frames.include_usage:
            self._event(frames.usage_chunk(provider._usage(seen.body, len(tokens))))
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _send_tokens(
        self, seen: Seen, fault: Fault | None, tokens: list[str], frames: _Frames
    ) -> bool:
        """Stream the tokens at the provider's pace, or as the fault says; False if it hung up."""
        provider = self._server.provider
        fault_at = -1 if fault is None else min(fault.after_tokens, len(tokens))
        interval = (
            fault.seconds if fault is not None and fault.kind == "slow" else provider.interval
        )
        due = time.monotonic()
        for index in range(len(tokens) + 1):
            if fault is not None and index == fault_at and fault.kind in ("drop", "stall"):
                if fault.kind == "drop":
                    self._drop()
                    return False
                self._pause(fault.seconds)
                due = time.monotonic()
            if index == len(tokens):
                return True
            # Due times, not fixed sleeps, so write time does not slow the pace down.
            due += interval
            self._pause(due - time.monotonic())
            sent = time.monotonic()
            self._event(frames.chunk({"content": tokens[index]}))
            seen.tokens_sent += 1
            if provider.on_token is not None:
                provider.on_token(seen, index, sent)
        return True

    def _pause(self, seconds: float) -> None:
        """Wait, but raise the moment the client hangs up or the provider stops."""
        deadline = time.monotonic() + seconds
        watching = True
        while True:
            if self._server.stopping.is_set():
                raise _Stopping
            left = deadline - time.monotonic()
            if left <= 0:
                return
            step = min(left, STOP_POLL)
            if not watching:
                time.sleep(step)
            elif self._watch.select(step):
                # Readable while we only write: EOF means the client hung up; bytes are a
                # pipelined request, after which there is nothing left to watch for.
                if self._peek() == b"":
                    raise _ClientGone("client closed the connection")
                watching = False

    def _peek(self) -> bytes:
        try:
            return self.connection.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return b"?"

    def _drop(self) -> None:
        """Hang up mid-answer: no terminating chunk, so clients see an incomplete body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _event(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":"))
        self._write_chunk(f"data: {data}\n\n".encode())

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _read_json(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _authorized(self) -> bool:
        key = self._server.provider.api_key
        return key is None or self.headers.get("Authorization") == f"Bearer {key}"

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
