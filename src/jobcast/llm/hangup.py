"""Hanging up on a provider that has gone quiet when the job is cancelled.

While tokens flow, every job.output event is a cancellation checkpoint. A provider that stalls
sends nothing to check between, and the read would wait out ``JOBCAST_LLM_TIMEOUT``; so while a
stream is open, a watcher looks at the cancel flag twice a second and closes the stream, which
ends the blocked read at once (a greenlet on the gevent pool, a thread elsewhere).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobcast.jobs.context import JobContext
from jobcast.llm.client import Completion

#: Seconds between two looks at the cancel flag.
LOOK_EVERY = 0.5


@contextmanager
def hang_up_on_cancel(ctx: JobContext[Any], completion: Completion) -> Iterator[None]:
    done = threading.Event()

    def watch() -> None:
        while not done.wait(LOOK_EVERY):
            if ctx.cancelled:
                completion.close()
                return

    watcher = threading.Thread(target=watch, name=f"jobcast-hangup-{ctx.job_id}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
