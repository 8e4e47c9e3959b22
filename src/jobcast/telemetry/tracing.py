"""jobcast's spans, through the OpenTelemetry API alone: they go to whatever tracer provider the
process has (a host's, the one the service configures) or to the API's no-op when it has none.

A job runs long after, and far from, the request that submitted it, and an attempt may be a
retry or a recovery sweep's re-dispatch with no request around. So the submit's span context
is kept on the job row as a W3C ``traceparent``, and each attempt's span starts from it: its
parent, and a link, so every attempt lands in the submit's trace.

Child spans (commits, publishes, the result file) are made only under a span that records:
an unsampled job, or a process without tracing, pays one context lookup per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, NonRecordingSpan, Span, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

tracer = trace.get_tracer("jobcast")

#: ``00-<trace id>-<span id>-<flags>``: the length of the job row's column.
TRACEPARENT_LENGTH = 55
#: The job message's header with the row's traceparent (Celery's instrumentation has its own
#: ``traceparent`` header: the sender's span, not the submit's).
TRACEPARENT_HEADER = "jobcast_traceparent"


def traceparent(span: Span) -> str | None:
    """The W3C ``traceparent`` of ``span``, or None for the no-op API's invalid span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def trace_id(parent: str | None) -> str | None:
    """The 32 hex digits of a stored ``traceparent``'s trace id (what the API shows)."""
    return parent[3:35] if parent else None


def span_context(parent: str | None) -> SpanContext | None:
    """A stored ``traceparent`` as a remote span context; None when absent or malformed."""
    if not parent or len(parent) != TRACEPARENT_LENGTH:
        return None
    try:
        _version, trace_hex, span_hex, flags = parent.split("-")
        ctx = SpanContext(
            int(trace_hex, 16),
            int(span_hex, 16),
            is_remote=True,
            trace_flags=TraceFlags(int(flags, 16)),
        )
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


def recording() -> bool:
    """Whether the span in force records: only then is a child span worth making."""
    return trace.get_current_span().is_recording()


def child_span(name: str, attributes: Mapping[str, AttributeValue]) -> AbstractContextManager[Span]:
    """A span under the current one when that one records; otherwise nothing at all."""
    if not trace.get_current_span().is_recording():
        return nullcontext(INVALID_SPAN)
    return tracer.start_as_current_span(name, attributes=attributes)


def submit_span(job_type: str) -> AbstractContextManager[Span]:
    """``jobcast.submit``: a child of the span in force (the host's request span, say)."""
    return tracer.start_as_current_span("jobcast.submit", attributes={"job.type": job_type})


@contextmanager
def job_span(job_id: str, job_type: str | None, parent: str | None) -> Iterator[Span]:
    """One attempt's span, ``jobcast.job <type>``: a child of the submit's span (``parent``,
    the row's ``traceparent``) and linked to it; linked too to the span in force here (the
    Celery instrumentation's, whose trace is the last sender's: the web, a retry or a sweep)."""
    submit = span_context(parent)
    links = []
    context = None
    if submit is not None:
        context = trace.set_span_in_context(NonRecordingSpan(submit))
        links.append(Link(submit, {"jobcast.link": "submit"}))
    delivery = trace.get_current_span().get_span_context()
    if delivery.is_valid:
        links.append(Link(delivery, {"jobcast.link": "delivery"}))
    name = f"jobcast.job {job_type}" if job_type else "jobcast.job"
    attributes: dict[str, AttributeValue] = {"job.id": job_id}
    if job_type:
        attributes["job.type"] = job_type
    with tracer.start_as_current_span(
        name, context=context, links=links, attributes=attributes
    ) as span:
        yield span
