"""The module Celery imports: ``celery -A jobcast.service.worker worker``.

Building the app here, at import time, is deliberate and happens nowhere else (like Flask's
``make_celery.py``): the worker needs one app whose context every task runs in. Celery looks
for ``app`` first, so that name is the Celery app; the Flask app is ``flask_app``.
"""

import logging
import os
import signal
import time
from typing import Any

from celery import Celery, bootsteps, signals
from celery.bootsteps import RUN
from gevent import monkey

from jobcast.runtime import open_connections, runtime_of
from jobcast.service.app import create_app
from jobcast.service.procs import tie_to_parent, tied_to_parent
from jobcast.service.serving.heap import freeze_startup_objects
from jobcast.telemetry import otel_setup

logger = logging.getLogger(__name__)


class BrokerWatch(bootsteps.StartStopStep):
    """Says when the consumer loses the broker and when it consumes again.

    Celery restarts the consumer's steps after a connection error (``stop`` while the blueprint
    still runs) and starts them again once it is connected: both moments get a line an operator
    can grep for, the second with how long the worker consumed nothing.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.lost_at: float | None = None

    def start(self, c: Any) -> None:
        if self.lost_at is not None:
            queues = ", ".join(sorted(q.name for q in c.task_consumer.queues))
            logger.warning(
                "broker connection regained %.1f s after it was found lost: consuming %s again",
                time.monotonic() - self.lost_at,
                queues,
            )
            self.lost_at = None

    def stop(self, c: Any) -> None:
        if c.blueprint.state == RUN and self.lost_at is None:
            self.lost_at = time.monotonic()
            logger.warning("broker connection lost: consuming nothing until it is back")


otel_setup.defer_provider()  # set by the signals below, in the process that runs the tasks
flask_app = create_app()
app: Celery = flask_app.extensions["celery"]
app.steps["consumer"].add(BrokerWatch)
celery = app

# Read in the worker's main process; pool children inherit both through fork.
_WORKER_PID = os.getpid()
_WORKER_TIED = tied_to_parent()


@signals.worker_process_init.connect
def _go_with_the_worker(**_: Any) -> None:
    """Under ``jobcast dev`` the worker goes when dev goes; its pool children go with it (the
    tie does not pass through fork). SIGKILL: nothing would be left to take their results."""
    if _WORKER_TIED:
        tie_to_parent(signal.SIGKILL, parent_pid=_WORKER_PID)


@signals.worker_init.connect
@signals.worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    """Before the pool starts (prefork children inherit the frozen objects, and their pages stay
    shared), and once the worker is ready (the gevent pool runs in this process)."""
    freeze_startup_objects()


@signals.worker_ready.connect
def _open_redis_connections(**_: Any) -> None:
    """The gevent pool runs up to ``io_concurrency`` jobs in this process, each needing a Redis
    connection of its own while it publishes: open them before the first job arrives."""
    if monkey.is_module_patched("socket"):
        runtime = runtime_of(flask_app)
        open_connections(runtime.redis, runtime.settings.io_concurrency)


@signals.worker_init.connect
def _trace_worker(sender: Any, **_: Any) -> None:
    """The gevent (or solo, threads) pool runs tasks in this process: its provider now. A
    prefork pool's children each set their own once forked (below)."""
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool as PreforkPool

    if not issubclass(get_implementation(sender.pool_cls), PreforkPool):
        otel_setup.start_tracing("jobcast-worker")


@signals.worker_process_init.connect
def _trace_pool_process(**_: Any) -> None:
    otel_setup.start_tracing("jobcast-worker")


@signals.beat_init.connect
def _trace_beat(**_: Any) -> None:
    otel_setup.start_tracing("jobcast-beat")


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _flush_spans(**_: Any) -> None:
    otel_setup.flush()


@signals.after_setup_task_logger.connect
def _task_lines_like_the_rest(logger: logging.Logger, **_: Any) -> None:
    """Celery gives ``celery.task`` a handler and format of its own; send its records to the
    root's handler instead, so they come out as every other line (JSON when chosen)."""
    logger.handlers.clear()
    logger.propagate = True
