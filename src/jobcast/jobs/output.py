"""A job's text output as ``job.output`` events: token deltas merged so a fast model does not
become thousands of events, with nothing lost.

Each event carries ``index`` (where its text starts in the whole output, in code points) and
``text``; every event's text in seq order is exactly the output. Deltas that arrive within
``interval`` of the last event wait for the next delta past it, or for ``flush()``. After
``restart()`` (a retry after text was sent) the next event starts again at index 0 with
``restart: true``, and clients drop what they had.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: ``send(index, text, restart)``: publish one job.output event.
Send = Callable[[int, str, bool], None]


class OutputBuffer:
    """The output so far, and the part of it not yet sent."""

    def __init__(self, send: Send, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._parts: list[str] = []
        self._sent = 0  # code points already sent
        self._pending: list[str] = []
        self._restart = False
        self._last_sent = float("-inf")

    @property
    def text(self) -> str:
        """Everything written since the start (or the last restart), sent or not."""
        return "".join(self._parts)

    def write(self, delta: str) -> bool:
        """Add ``delta``; True when that sent an event (the interval had passed)."""
        if not delta:
            return False
        self._parts.append(delta)
        self._pending.append(delta)
        if time.monotonic() - self._last_sent >= self._interval:
            return self.flush()
        return False

    def flush(self) -> bool:
        """Send what is held back, if anything; True if an event went out."""
        if not self._pending:
            return False
        chunk = "".join(self._pending)
        index, restart = self._sent, self._restart
        self._pending.clear()
        self._sent += len(chunk)
        self._restart = False
        self._last_sent = time.monotonic()
        self._send(index, chunk, restart)
        return True

    def restart(self) -> None:
        """Start the output again: what was written is dropped, sent or not."""
        self._restart = True
        self._parts.clear()
        self._pending.clear()
        self._sent = 0
