"""jobcast's Prometheus metrics, in prometheus_client's default registry (the host's).

Every name starts with ``jobcast_`` and every label is bounded: a job type (the registry's), an
event name, a queue, a route rule, never a job id, an owner or a host. Under
``PROMETHEUS_MULTIPROC_DIR`` each process writes its values to files there and a scrape sums
every process of the machine (``telemetry.scrape``); prometheus_client picks that mode when it
is first imported, so the service's commands set the variable before their children start.

The hot paths (an attempt's steps, an event publish, a socket delivery) reach label children
bound once per job type or event name: counting is a dict lookup and an increment. Whether an
app counts at all is its ``JOBCAST_METRICS``: ``instrument`` hands the counters to that app's
parts, and the parts that know the app's settings ask them.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from celery import Celery, signals
from flask import Response
from prometheus_client import Counter, Gauge, Histogram

from jobcast.telemetry.scrape import QUEUES, forget_process, metrics_response

if TYPE_CHECKING:
    from jobcast.runtime import Runtime

__all__ = ["instrument", "metrics_response", "metrics_view"]

_WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
_DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

SUBMITTED = Counter("jobcast_jobs_submitted", "Jobs accepted and queued.", ["type"])
STARTED = Counter("jobcast_jobs_started", "Attempts started by a worker.", ["type"])
SUCCEEDED = Counter("jobcast_jobs_succeeded", "Jobs that succeeded.", ["type"])
FAILED = Counter("jobcast_jobs_failed", "Jobs that failed for good.", ["type"])
CANCELLED = Counter("jobcast_jobs_cancelled", "Jobs cancelled, queued or running.", ["type"])
RETRIED = Counter("jobcast_jobs_retried", "Failed attempts scheduled to run again.", ["type"])
QUEUE_WAIT = Histogram(
    "jobcast_job_queue_wait_seconds",
    "From submission to the start of the job's first attempt.",
    ["type"],
    buckets=_WAIT_BUCKETS,
)
RUN_TIME = Histogram(
    "jobcast_job_run_seconds",
    "One attempt, from its start to its outcome (succeeded, failed, retrying, cancelled).",
    ["type"],
    buckets=_RUN_BUCKETS,
)
PUBLISHED = Counter("jobcast_events_published", "Job events published.", ["event"])
DELIVERED = Counter(
    "jobcast_events_delivered", "Job events sent to a client connection.", ["transport"]
)
DELIVERY = Histogram(
    "jobcast_event_delivery_seconds",
    "From a live event's publish (its ts) to its sending to a client connection.",
    ["transport"],
    buckets=_DELIVERY_BUCKETS,
)
SOCKETS = Gauge(
    "jobcast_sockets_connected", "Open Socket.IO connections.", multiprocess_mode="livesum"
)
STREAMS = Gauge(
    "jobcast_sse_streams_open", "Open Server-Sent Events streams.", multiprocess_mode="livesum"
)
WORKERS = Gauge(
    "jobcast_workers_alive",
    "Celery worker processes running jobcast's tasks.",
    multiprocess_mode="livesum",
)
REQUESTS = Counter(
    "jobcast_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
REQUEST_TIME = Histogram(
    "jobcast_http_request_duration_seconds",
    "From the request's first hook to its response (a stream: to its headers).",
    ["method", "route"],
    buckets=_HTTP_BUCKETS,
)

SOCKET_DELIVERED = DELIVERED.labels("socket")
SOCKET_DELIVERY = DELIVERY.labels("socket")
SSE_DELIVERED = DELIVERED.labels("sse")
SSE_DELIVERY = DELIVERY.labels("sse")


class TypeMetrics(NamedTuple):
    """One job type's children, bound once."""

    submitted: Counter
    started: Counter
    succeeded: Counter
    failed: Counter
    cancelled: Counter
    retried: Counter
    queue_wait: Histogram
    run_time: Histogram


_types: dict[str, TypeMetrics] = {}
_events: dict[str, Counter] = {}
_routes: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

#: Methods counted under their own name; any other (a client may send anything) is "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def of_type(name: str) -> TypeMetrics:
    """The children of job type ``name`` (types come from the registry: a bounded set)."""
    found = _types.get(name)
    if found is None:
        found = _types[name] = TypeMetrics(
            SUBMITTED.labels(name),
            STARTED.labels(name),
            SUCCEEDED.labels(name),
            FAILED.labels(name),
            CANCELLED.labels(name),
            RETRIED.labels(name),
            QUEUE_WAIT.labels(name),
            RUN_TIME.labels(name),
        )
    return found


def count_published(event: str) -> None:
    """An event published (``EventLog.on_publish``)."""
    found = _events.get(event)
    if found is None:
        found = _events[event] = PUBLISHED.labels(event)
    found.inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One HTTP answer; ``route`` is the URL rule, never the path a client sent."""
    key = (method, route, status)
    found = _routes.get(key)
    if found is None:
        shown = method if method in _METHODS else "other"
        found = _routes[key] = (
            REQUESTS.labels(shown, route, str(status)),
            REQUEST_TIME.labels(shown, route),
        )
    found[0].inc()
    found[1].observe(seconds)


def instrument(runtime: Runtime) -> None:
    """Count what ``runtime``'s app does, unless its ``JOBCAST_METRICS`` is off: the hooks of
    its event log, socket registry and client manager, its queues' lengths at scrape time,
    and its Celery workers."""
    from jobcast.realtime.pubsub import UserChannelManager

    if not runtime.settings.metrics:
        return
    runtime.events.on_publish = count_published
    runtime.sockets.gauge = SOCKETS
    server = runtime.socketio.server
    if server is not None and isinstance(server.manager, UserChannelManager):
        server.manager.counted = True
    QUEUES.watch(runtime.celery.conf.broker_url or "", runtime.queues.values())
    watch_workers(runtime.celery)


_workers: weakref.WeakSet[Celery] = weakref.WeakSet()


def watch_workers(celery: Celery) -> None:
    """Count the worker processes of ``celery`` alive; Celery's signals are process-wide, so
    the handlers look at whose worker sent them and leave a host's other apps alone."""
    _workers.add(celery)
    signals.worker_ready.connect(_worker_up, weak=False, dispatch_uid="jobcast-metrics-up")
    signals.worker_shutdown.connect(_worker_down, weak=False, dispatch_uid="jobcast-metrics-down")
    signals.worker_process_shutdown.connect(
        _pool_child_down, weak=False, dispatch_uid="jobcast-metrics-child-down"
    )


def _worker_up(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) in _workers:
        WORKERS.set(1)


def _worker_down(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) in _workers:
        WORKERS.set(0)
        forget_process(os.getpid())


def _pool_child_down(pid: int | None = None, **_: Any) -> None:
    forget_process(pid or os.getpid())


def metrics_view() -> Response:
    """A view a host app can route (``app.add_url_rule("/metrics", view_func=metrics_view)``)
    to expose prometheus_client's registry, jobcast's metrics in it; who may read it is the
    host's to decide (a ``before_request`` of its own, or a network rule)."""
    return metrics_response()
