"""Logging with correlation: every record carries the request id and job id in force.

The ids live in context variables, set by the web layer per request and by the task runner per
job; contextvars are per thread and per greenlet, so concurrent jobs never mix their ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("jobcast_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("jobcast_job_id", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s"


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        record.job_id = job_id_var.get() or "-"
        return True


def configure_logging(level: str) -> None:
    """Install one handler on the root logger (idempotent, so repeated create_app is fine)."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if any(isinstance(f, CorrelationFilter) for f in handler.filters):
            return
    handler = logging.StreamHandler()
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)


@contextmanager
def correlated(*, request_id: str | None, job_id: str | None) -> Iterator[None]:
    """Tag every log record inside the block with these ids."""
    request_token = request_id_var.set(request_id)
    job_token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(job_token)
        request_id_var.reset(request_token)
