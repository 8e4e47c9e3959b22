"""The telemetry switches of ``bench overhead`` and ``bench latency`` (``--telemetry``).

Each variant is the environment every process of a stack (or of one round) runs with:

- ``off``: no metrics (``JOBCAST_METRICS=false``), no tracing;
- ``metrics``: Prometheus metrics collected (the default), no tracing;
- ``tracing``: no metrics, OpenTelemetry traces sampled at 10 % (parent-based, so the worker
  follows the submit's decision) and exported over OTLP/HTTP to a sink in the bench process,
  which answers every export at once and counts the spans' bytes, so the exporter's work is
  real and nothing of the collector's is.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VARIANTS = ("off", "metrics", "tracing")
SAMPLE_RATIO = "0.1"


def add_argument(parser: argparse.ArgumentParser) -> None:
    if "--telemetry" in parser._option_string_actions:  # ``all``: one parser for every benchmark
        return
    parser.add_argument(
        "--telemetry",
        default="",
        help="comma-separated variants to compare in one run: off, metrics, tracing (sampled"
        " 10%%); empty: the stack's defaults only",
    )


def variants(value: str) -> tuple[str, ...]:
    """The ``--telemetry`` list, checked; empty means no comparison."""
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--telemetry: unknown variant(s) {unknown}; choose from {VARIANTS}")
    return chosen


def environment(variant: str, sink_url: str) -> dict[str, str]:
    """What the processes of ``variant`` run with."""
    metrics = "false" if variant != "metrics" else "true"
    env = {"JOBCAST_METRICS": metrics, "OTEL_TRACES_EXPORTER": "none"}
    if variant == "tracing":
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink_url,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=SAMPLE_RATIO,
        )
    return env


class _Sink(ThreadingHTTPServer):
    daemon_threads = True
    exports = 0
    bytes_received = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Sink

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.exports += 1
        self.server.bytes_received += length
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@contextmanager
def otlp_sink() -> Iterator[_Sink]:
    """An OTLP/HTTP endpoint on a free local port (``sink.server_address``)."""
    sink = _Sink(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=sink.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.shutdown()
        sink.server_close()


def sink_url(sink: _Sink) -> str:
    host, port = sink.server_address[:2]
    return f"http://{host!s}:{port}"


def overhead(on: float | None, off: float | None) -> dict[str, Any]:
    """``on`` against ``off`` as a ratio and a percentage (None where either is missing)."""
    if on is None or off is None or off <= 0:
        return {"on": on, "off": off, "ratio_on_off": None, "overhead_percent": None}
    return {
        "on": on,
        "off": off,
        "ratio_on_off": round(on / off, 3),
        "overhead_percent": round((on / off - 1) * 100, 1),
    }
