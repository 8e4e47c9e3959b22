"""The API bulkhead: a burst of API requests waits its turn; Socket.IO, health checks, slow
clients and streams being sent do not hold a slot."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from jobcast.service.serving.bulkhead import ApiBulkhead

LIMIT_BYTES = 1024


class _GatedApp:
    """A WSGI app whose calls block until released, counting how many are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        self.release.wait(10)
        self.bodies.append(environ["wsgi.input"].read())
        with self._lock:
            self.inside -= 1
        return [b"ok"]


class _SlowBody(io.RawIOBase):
    """A client that has declared a body and not sent it yet."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = threading.Event()

    def read(self, size: int = -1) -> bytes:
        self.sent.wait(10)
        body, self.body = self.body, b""
        return body


def _environ(path: str, body: bytes = b"", **extra: Any) -> dict[str, Any]:
    return {
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.input": io.BytesIO(body),
        **extra,
    }


def _call(app: Any, environ: dict[str, Any]) -> threading.Thread:
    thread = threading.Thread(target=app, args=(environ, lambda *a: None), daemon=True)
    thread.start()
    return thread


def _finishes(app: Any, environ: dict[str, Any]) -> bool:
    thread = _call(app, environ)
    thread.join(5)
    return not thread.is_alive()


def test_at_most_limit_api_requests_are_in_the_app_at_once() -> None:
    inner = _GatedApp()
    app = ApiBulkhead(inner, limit=2, max_body_bytes=LIMIT_BYTES)
    threads = [_call(app, _environ("/api/v1/jobs", b'{"n": 1}')) for _ in range(5)]
    assert inner.entered.acquire(timeout=5) and inner.entered.acquire(timeout=5)
    assert not inner.entered.acquire(timeout=0.3)  # the other three wait outside
    inner.release.set()
    for thread in threads:
        thread.join(10)
    assert inner.most_inside == 2
    assert inner.inside == 0
    assert inner.bodies == [b'{"n": 1}'] * 5  # the app reads the body it was sent


@pytest.mark.parametrize("path", ["/socket.io/", "/healthz", "/readyz"])
def test_socketio_and_health_checks_pass_a_full_bulkhead(path: str) -> None:
    inner = _GatedApp()
    app = ApiBulkhead(inner, limit=1, max_body_bytes=LIMIT_BYTES)
    threads = [_call(app, _environ("/api/v1/jobs")), _call(app, _environ(path))]
    for _ in range(2):  # both inside: the API request holds the only slot
        assert inner.entered.acquire(timeout=5)
    inner.release.set()
    for thread in threads:
        thread.join(10)
    assert inner.most_inside == 2


def test_a_client_slow_to_send_its_body_holds_no_slot() -> None:
    inner = _GatedApp()
    inner.release.set()
    app = ApiBulkhead(inner, limit=1, max_body_bytes=LIMIT_BYTES)
    slow = _SlowBody(b'{"slow": true}')
    stalled = _call(app, _environ("/api/v1/jobs", b'{"slow": true}', **{"wsgi.input": slow}))
    assert _finishes(app, _environ("/api/v1/jobs", b"{}"))  # not stuck behind the slow one
    slow.sent.set()
    stalled.join(5)
    assert sorted(inner.bodies) == sorted([b"{}", b'{"slow": true}'])


def test_a_body_over_the_limit_goes_to_the_app_unread_and_without_a_slot() -> None:
    seen: list[dict[str, Any]] = []

    def refusing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(environ)
        return [b"413"]

    original = io.BytesIO(b"x" * (LIMIT_BYTES + 1))
    app = ApiBulkhead(refusing, limit=1, max_body_bytes=LIMIT_BYTES)
    app(_environ("/api/v1/jobs", b"x" * (LIMIT_BYTES + 1), **{"wsgi.input": original}), None)
    assert seen[0]["wsgi.input"] is original and original.tell() == 0


def test_a_chunked_body_is_read_up_to_one_byte_over_the_limit() -> None:
    inner = _GatedApp()
    inner.release.set()
    app = ApiBulkhead(inner, limit=1, max_body_bytes=LIMIT_BYTES)
    chunked = io.BytesIO(b"y" * (LIMIT_BYTES * 4))
    environ = _environ(
        "/api/v1/jobs",
        **{
            "wsgi.input": chunked,
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    app(environ, None)
    assert inner.bodies == [b"y" * (LIMIT_BYTES + 1)]  # enough for the app to answer 413


def test_a_request_without_a_body_is_not_read_first() -> None:
    seen: list[Any] = []

    def app_(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"])
        return [b"ok"]

    original = io.BytesIO(b"")
    # gunicorn marks every input terminated, GETs included: that alone means no body.
    ApiBulkhead(app_, limit=1, max_body_bytes=LIMIT_BYTES)(
        _environ("/api/v1/jobs", **{"wsgi.input": original, "wsgi.input_terminated": True}), None
    )
    assert seen == [original]


def test_a_streamed_response_gives_its_slot_back_before_it_is_sent() -> None:
    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        def body() -> Iterator[bytes]:
            yield b"event: one\n\n"

        return body()

    app = ApiBulkhead(streaming, limit=1, max_body_bytes=LIMIT_BYTES)
    first = app(_environ("/api/v1/jobs/x/events"), None)
    # The first stream is still open (not iterated); a second request gets the slot at once.
    assert _finishes(app, _environ("/api/v1/jobs/y/events"))
    assert list(first) == [b"event: one\n\n"]


def test_a_request_that_raises_frees_its_slot() -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("boom")

    app = ApiBulkhead(failing, limit=1, max_body_bytes=LIMIT_BYTES)
    with pytest.raises(RuntimeError):
        app(_environ("/api/v1/jobs"), None)

    def again(environ: dict[str, Any], start_response: Any) -> None:
        with pytest.raises(RuntimeError):
            app(environ, start_response)

    assert _finishes(again, _environ("/api/v1/jobs"))  # raises again, without waiting
