"""What a job function receives: its params, its owner, ``progress()``, text output,
cancellation, a result file.

The context knows nothing of Celery, Redis or Flask; the task runner hands it a ``Reporter`` that
does the talking. Progress is coalesced here so a tight loop calling ``progress()`` thousands of
times a second sends at most one event per ``interval`` (100% always goes out); text output is
merged the same way (``jobs.output``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from jobcast.errors import JobCancelled
from jobcast.jobs.output import OutputBuffer

P = TypeVar("P", bound=BaseModel)


class Reporter(Protocol):
    """The runtime side of a context: where progress goes and where cancellation comes from."""

    def progress(self, percent: float, message: str | None) -> None:
        """Send progress, or raise JobCancelled if the owner asked to cancel."""

    def output(self, index: int, text: str, restart: bool) -> None:
        """Send one ``job.output`` event (not a cancellation checkpoint: text is never lost)."""

    def cancel_requested(self) -> bool: ...

    def staging_path(self, filename: str) -> Path: ...


class JobContext(Generic[P]):
    """Handed to every job function; ``JobContext[MyParams]`` types ``ctx.params``."""

    def __init__(
        self,
        *,
        job_id: str,
        owner_id: str,
        params: P,
        attempt: int,
        request_id: str | None,
        reporter: Reporter,
        interval: float = 0.1,
        output_interval: float = 0.05,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.job_id = job_id
        self.owner_id = owner_id
        self.params = params
        self.attempt = attempt
        self.request_id = request_id
        self.log = logger or logging.getLogger("jobcast.job")
        self._reporter = reporter
        self._interval = interval
        self._last_sent = float("-inf")
        self._sent: tuple[float, str | None] | None = None
        self._pending: tuple[float, str | None] | None = None
        self.result_file: tuple[Path, str, str] | None = None
        self._output = OutputBuffer(reporter.output, output_interval)
        if attempt > 1:
            # An earlier attempt may have sent part of an output: clients drop it at this
            # attempt's first piece.
            self._output.restart()

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report ``percent`` (0-100) done; also a cancellation checkpoint.

        Calls closer together than the interval are coalesced: the latest value is kept and
        sent with the next call past the interval, or by ``flush()`` before the job ends.
        """
        percent = max(0.0, min(100.0, float(percent)))
        self._pending = (percent, message)
        now = time.monotonic()
        if (percent >= 100.0 or now - self._last_sent >= self._interval) and not self.flush():
            self.checkpoint()

    def output(self, text: str) -> None:
        """Append ``text`` to the job's output, sent as ``job.output`` events (merged: at most
        one per output interval); a cancellation checkpoint whenever an event goes out."""
        if self._output.write(text):
            self._stop_if_cancelled()

    def stream_text(self, deltas: Iterable[str]) -> str:
        """Append each delta (a model's tokens) to the output; returns the whole output.

        Cancelling stops the stream at the next event sent; whatever was written by then has
        gone out, and ``output_text`` holds it for the result.
        """
        for delta in deltas:
            self.output(delta)
        self._output.flush()
        return self._output.text

    @property
    def output_text(self) -> str:
        """The output written so far (since the last ``restart_output()``)."""
        return self._output.text

    def restart_output(self) -> None:
        """Start the output again (a retry after text was sent): the next ``job.output`` has
        index 0 and ``restart: true``, and clients drop what they had."""
        self._output.restart()

    def flush_output(self) -> None:
        """Send the output held back for merging (before a job ends some other way)."""
        self._output.flush()

    def _stop_if_cancelled(self) -> None:
        if self.cancelled:
            self._output.flush()
            raise JobCancelled(self.job_id)

    def flush(self) -> bool:
        """Send the coalesced progress, if any was held back (and held-back output); True if
        progress was sent.

        Sending progress is a cancellation checkpoint too: the reporter raises JobCancelled instead.
        """
        self._output.flush()
        if self._pending is None or self._pending == self._sent:
            self._pending = None
            return False
        percent, message = self._pending
        self._pending = None
        self._sent = (percent, message)
        self._last_sent = time.monotonic()
        self._reporter.progress(percent, message)
        return True

    @property
    def cancelled(self) -> bool:
        """True once the owner asked to cancel; long loops should check it and stop."""
        return self._reporter.cancel_requested()

    def checkpoint(self) -> None:
        """Raise JobCancelled if the owner asked to cancel; jobcast then cleans up."""
        if self.cancelled:
            raise JobCancelled(self.job_id)

    def result_path(self, filename: str, content_type: str) -> Path:
        """A path to write this job's result file to.

        The file is staged privately and published atomically only if the job succeeds; a
        failed, cancelled or crashed attempt leaves nothing behind.
        """
        path = self._reporter.staging_path(filename)
        self.result_file = (path, path.name, content_type)
        return path
