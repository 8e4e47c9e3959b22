"""Logging with correlation: every record carries the request id and job id in force.

The ids live in context variables, set by the web layer per request and by the task runner per
job; contextvars are per thread and per greenlet, so concurrent jobs never mix their ids.
Celery logs some lines about a task outside the task ("received", "succeeded"); those carry
the task id (= job id) in ``record.data``, and the request id is looked up from the ids the
worker remembered when the message arrived.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("jobcast_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("jobcast_job_id", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s"


_RECENT_REQUESTS: OrderedDict[str, str] = OrderedDict()
_RECENT_LIMIT = 10_000


def remember_request(job_id: str, request_id: str) -> None:
    """Note the request id of a job whose message a worker received (bounded, newest kept)."""
    _RECENT_REQUESTS[job_id] = request_id
    _RECENT_REQUESTS.move_to_end(job_id)
    while len(_RECENT_REQUESTS) > _RECENT_LIMIT:
        _RECENT_REQUESTS.popitem(last=False)


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        job_id = job_id_var.get()
        request_id = request_id_var.get()
        data = getattr(record, "data", None)
        if job_id is None and isinstance(data, dict) and isinstance(data.get("id"), str):
            job_id = data["id"]
            request_id = request_id or _RECENT_REQUESTS.get(job_id)
        record.request_id = request_id or "-"
        record.job_id = job_id or "-"
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
