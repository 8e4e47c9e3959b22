"""Logging with correlation: every record carries the request and job in force.

The ids live in context variables, set by the web layer per request, by a submit for its job,
and by the task runner per job; contextvars are per thread and per greenlet, so concurrent jobs
never mix their ids. The trace and span ids are those of the span in force (OpenTelemetry's
own context). Celery logs some lines about a task outside the task ("received",
"succeeded"); those carry the task id (= job id) in ``record.data``, and the rest is looked up
from what the worker remembered of the job when its message arrived.

Two formats: ``plain`` text lines, and ``json`` (python-json-logger), one object per line with
every id as a member, null when unknown. Only the service configures logging: the extension
leaves a host's to the host.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, NamedTuple

from opentelemetry import trace

request_id_var: ContextVar[str | None] = ContextVar("jobcast_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("jobcast_job_id", default=None)
job_type_var: ContextVar[str | None] = ContextVar("jobcast_job_type", default=None)
owner_var: ContextVar[str | None] = ContextVar("jobcast_owner", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s"
#: The members of a JSON line besides ``timestamp`` (and any ``extra`` of the record).
JSON_FIELDS = (
    "levelname",
    "name",
    "message",
    "request_id",
    "job_id",
    "job_type",
    "owner",
    "trace_id",
    "span_id",
)
_JSON_NAMES = {"levelname": "level", "name": "logger"}


class JobTags(NamedTuple):
    """What a worker remembers of a job for the lines Celery logs outside its task."""

    request_id: str | None = None
    job_type: str | None = None
    owner: str | None = None
    trace_id: str | None = None


_RECENT: OrderedDict[str, JobTags] = OrderedDict()
_RECENT_LIMIT = 10_000


def remember_job(job_id: str, tags: JobTags) -> None:
    """Note what is known of a job whose message a worker received (bounded, newest kept)."""
    _RECENT[job_id] = tags
    _RECENT.move_to_end(job_id)
    while len(_RECENT) > _RECENT_LIMIT:
        _RECENT.popitem(last=False)


class CorrelationFilter(logging.Filter):
    """Puts the ids on each record: ``missing`` where one is unknown, and the trace and span
    ids only ``with_trace`` (the JSON lines: the plain ones do not show them)."""

    def __init__(self, missing: str | None = "-", *, with_trace: bool = False) -> None:
        super().__init__()
        self.missing = missing
        self.with_trace = with_trace

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = job_id_var.get()
        tags = JobTags(request_id_var.get(), job_type_var.get(), owner_var.get())
        data = getattr(record, "data", None)
        if job_id is None and isinstance(data, dict) and isinstance(data.get("id"), str):
            job_id = data["id"]
            tags = _RECENT.get(job_id) or tags
        missing = self.missing
        record.request_id = tags.request_id or missing
        record.job_id = job_id or missing
        if not self.with_trace:
            return True
        record.job_type = tags.job_type or missing
        record.owner = tags.owner or missing
        # A line Celery logs about a job outside it shows the job's trace, not the span in
        # force there (Celery's own, in the trace of whoever sent the message last).
        span = trace.get_current_span().get_span_context()
        trace_id = f"{span.trace_id:032x}" if span.is_valid else None
        shown = tags.trace_id or trace_id
        record.trace_id = shown or missing
        record.span_id = f"{span.span_id:016x}" if shown and shown == trace_id else missing
        return True


def formatter(style: Literal["plain", "json"]) -> logging.Formatter:
    """The formatter of ``style`` (records must have passed a CorrelationFilter)."""
    if style == "plain":
        return logging.Formatter(FORMAT)
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        list(JSON_FIELDS), rename_fields=_JSON_NAMES, timestamp=True, json_ensure_ascii=False
    )


def correlation_filter(style: Literal["plain", "json"]) -> CorrelationFilter:
    return CorrelationFilter("-") if style == "plain" else CorrelationFilter(None, with_trace=True)


def configure_logging(level: str, style: Literal["plain", "json"] = "plain") -> None:
    """Install one handler on the root logger; called again (another create_app), it sets
    the level and style of the one already there."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "jobcast", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.jobcast = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for old in [f for f in handler.filters if isinstance(f, CorrelationFilter)]:
        handler.removeFilter(old)
    handler.addFilter(correlation_filter(style))
    handler.setFormatter(formatter(style))


@contextmanager
def correlated(
    *,
    request_id: str | None,
    job_id: str | None,
    job_type: str | None = None,
    owner: str | None = None,
) -> Iterator[None]:
    """Tag every log record inside the block with these ids."""
    request_token = request_id_var.set(request_id)
    with about_job(job_id, job_type, owner):
        try:
            yield
        finally:
            request_id_var.reset(request_token)


@contextmanager
def about_job(job_id: str | None, job_type: str | None, owner: str | None) -> Iterator[None]:
    """Tag every record inside the block as about this job (the request's id stays)."""
    tokens = (job_id_var.set(job_id), job_type_var.set(job_type), owner_var.set(owner))
    try:
        yield
    finally:
        owner_var.reset(tokens[2])
        job_type_var.reset(tokens[1])
        job_id_var.reset(tokens[0])


def tag_job(*, request_id: str | None, job_type: str, owner: str) -> None:
    """Complete the tags of the job in force once its row is read (the task runner)."""
    request_id_var.set(request_id)
    job_type_var.set(job_type)
    owner_var.set(owner)
