"""The API bulkhead: a burst of API requests waits its turn; Socket.IO and streams do not."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from jobcast.bulkhead import ApiBulkhead


class _GatedApp:
    """A WSGI app whose calls block until released, counting how many are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        self.release.wait(10)
        with self._lock:
            self.inside -= 1
        return [b"ok"]


def _call(app: Any, path: str) -> threading.Thread:
    thread = threading.Thread(target=app, args=({"PATH_INFO": path}, lambda *a: None))
    thread.start()
    return thread


def test_at_most_limit_api_requests_are_in_the_app_at_once() -> None:
    inner = _GatedApp()
    app = ApiBulkhead(inner, limit=2)
    threads = [_call(app, "/api/v1/jobs") for _ in range(5)]
    assert inner.entered.acquire(timeout=5) and inner.entered.acquire(timeout=5)
    assert not inner.entered.acquire(timeout=0.3)  # the other three wait outside
    inner.release.set()
    for thread in threads:
        thread.join(10)
    assert inner.most_inside == 2
    assert inner.inside == 0


def test_socketio_requests_pass_a_full_bulkhead() -> None:
    inner = _GatedApp()
    app = ApiBulkhead(inner, limit=1)
    threads = [_call(app, "/api/v1/jobs"), _call(app, "/socket.io/"), _call(app, "/socket.io/")]
    for _ in range(3):  # all three inside: the API one holds the only slot
        assert inner.entered.acquire(timeout=5)
    inner.release.set()
    for thread in threads:
        thread.join(10)
    assert inner.most_inside == 3


def test_a_streamed_response_gives_its_slot_back_before_it_is_sent() -> None:
    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        def body() -> Iterator[bytes]:
            yield b"event: one\n\n"

        return body()

    app = ApiBulkhead(streaming, limit=1)
    first = app({"PATH_INFO": "/api/v1/jobs/x/events"}, lambda *a: None)
    # The first stream is still open (not iterated); a second request gets the slot at once.
    second = app({"PATH_INFO": "/api/v1/jobs/y/events"}, lambda *a: None)
    assert list(first) == list(second) == [b"event: one\n\n"]


def test_a_request_that_raises_frees_its_slot() -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("boom")

    app = ApiBulkhead(failing, limit=1)
    for _ in range(2):
        try:
            app({"PATH_INFO": "/api/v1/jobs"}, lambda *a: None)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the app's error must reach the server")
