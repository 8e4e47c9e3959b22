"""Reading the metrics: one process's registry, or every process of the machine.

Without ``PROMETHEUS_MULTIPROC_DIR`` a scrape reads prometheus_client's default registry (a
host's own ``/metrics`` already does). With it, a scrape sums the files every process wrote
there (``MultiProcessCollector``), after dropping the live gauges of processes that are gone:
a worker killed with SIGKILL never says so itself. Queue lengths are asked of the broker at
scrape time, so nothing on a job's path pays for them.

``python -m jobcast.telemetry.scrape HOST:PORT`` serves that view on an address of its own
(``JOBCAST_METRICS_BIND``, started by ``jobcast web`` and ``jobcast worker``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from flask import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

#: The files of a process's live gauges (``multiprocess_mode`` live*): ``..._<pid>.db``.
_LIVE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")

#: A queue length the broker takes longer than this to say is left out of that scrape.
_BROKER_TIMEOUT = 0.5


class QueueLengths(Collector):
    """``jobcast_queue_length``: LLEN of jobcast's queues on each Redis broker an app of this
    process uses (kombu keeps a queue's messages in a list of its name). A broker that does not
    answer is left out of the scrape, not an error."""

    def __init__(self) -> None:
        self._brokers: dict[str, tuple[Redis, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def watch(self, broker_url: str, queues: Iterable[str]) -> None:
        url = broker_url.split(";")[0].strip()  # the first of a failover list
        if urlsplit(url).scheme not in ("redis", "rediss"):
            return
        with self._lock:
            if url not in self._brokers:
                client = Redis.from_url(
                    url, socket_timeout=_BROKER_TIMEOUT, socket_connect_timeout=_BROKER_TIMEOUT
                )
                self._brokers[url] = (client, ())
            client, known = self._brokers[url]
            self._brokers[url] = (client, tuple(sorted({*known, *queues})))

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        seen: set[str] = set()
        with self._lock:
            brokers = list(self._brokers.values())
        for client, queues in brokers:
            try:
                pipe = client.pipeline(transaction=False)
                for queue in queues:
                    pipe.llen(queue)
                lengths = pipe.execute()
            except RedisError as exc:
                log.debug("queue lengths left out of the scrape: %s", exc)
                continue
            for queue, length in zip(queues, lengths, strict=True):
                if queue not in seen:
                    seen.add(queue)
                    family.add_metric([queue], float(length))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "jobcast_queue_length", "Messages waiting in a jobcast queue.", labels=["queue"]
        )


class _LiveProcesses(Collector):
    """The multiprocess files, after the live gauges of dead processes are dropped."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._files = multiprocess.MultiProcessCollector(None, path)

    def collect(self) -> Iterable[Metric]:
        forget_dead(self._path)
        return self._files.collect()


QUEUES = QueueLengths()
REGISTRY.register(QUEUES)
_multiprocess: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    """What a scrape reads: every process of the machine under ``PROMETHEUS_MULTIPROC_DIR``,
    this process's default registry otherwise."""
    global _multiprocess
    path = os.environ.get(MULTIPROC_DIR)
    if not path:
        return REGISTRY
    if _multiprocess is None:
        made = CollectorRegistry()
        made.register(_LiveProcesses(path))
        made.register(QUEUES)
        _multiprocess = made
    return _multiprocess


def metrics_response() -> Response:
    """The scrape as a Flask response (Prometheus's text format)."""
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def forget_process(pid: int) -> None:
    """Drop the live gauges of process ``pid`` (it is ending), when processes share files."""
    path = os.environ.get(MULTIPROC_DIR)
    if path:
        multiprocess.mark_process_dead(pid, path)


def forget_dead(path: str) -> None:
    """Drop the live gauges of every process of ``path`` that no longer runs (the files are
    this machine's, so its pids say)."""
    pids = set()
    for name in os.listdir(path):
        found = _LIVE_FILE.match(name)
        if found:
            pids.add(int(found.group(1)))
    for pid in pids - {os.getpid()}:
        if not _running(pid):
            multiprocess.mark_process_dead(pid, path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


def serve(bind: str, broker_url: str, queues: Iterable[str]) -> None:
    """Serve the scrape on ``bind`` (host:port) until this process is stopped."""
    host, _, port = bind.rpartition(":")
    QUEUES.watch(broker_url, queues)
    _server, thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", registry())
    thread.join()


def main(argv: list[str]) -> None:
    from jobcast.config import load_settings
    from jobcast.jobs.registry import queue_names

    settings = load_settings()
    path = os.environ.get(MULTIPROC_DIR)
    if not path or not Path(path).is_dir():
        sys.exit(f"{MULTIPROC_DIR} must name the directory the processes write their metrics to")
    bind = argv[0] if argv else settings.metrics_bind
    serve(bind, settings.celery_broker_url, queue_names(settings.queue_prefix).values())


if __name__ == "__main__":
    main(sys.argv[1:])
