"""The service's OpenTelemetry SDK, set up from the standard ``OTEL_*`` variables in each process
it starts: web, workers, beat (``jobcast dev`` passes its environment to all of them).

Tracing is on only when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``;
``none`` or unset: off) and ``OTEL_SDK_DISABLED`` is not ``true``; off, nothing here runs and
jobcast's spans go to the API's no-op. The SDK itself reads the rest: ``OTEL_SERVICE_NAME``
and ``OTEL_RESOURCE_ATTRIBUTES``, the sampler (``OTEL_TRACES_SAMPLER[_ARG]``), the batch
processor (``OTEL_BSP_*``) and the OTLP exporter (``OTEL_EXPORTER_OTLP_*``).

A batch processor's thread does not survive fork, so a Celery process sets its provider when
Celery says where tasks will run (``worker_process_init`` in each prefork child), not at
import: ``jobcast.service.worker`` calls ``defer_provider`` before it builds the app.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from flask import Flask
from opentelemetry import trace

from jobcast.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_provider: TracerProvider | None = None
_deferred = False


def tracing_requested() -> bool:
    """Whether the environment asks for traces (an exporter, and the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(_exporter_names())


def _exporter_names() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").lower().split(",")
    return [name for name in (n.strip() for n in names) if name and name != "none"]


def defer_provider() -> None:
    """This process sets its provider later (a Celery process, through its signals)."""
    global _deferred
    _deferred = True


def trace_app(app: Flask) -> None:
    """Tracing for the service's app: request spans (Flask's instrumentation), Celery's
    publish and run spans, and this process's provider unless deferred. A no-op when off."""
    if not tracing_requested():
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    if not _deferred:
        start_tracing("jobcast-web")
    FlaskInstrumentor().instrument_app(app)
    celery = CeleryInstrumentor()
    if not celery.is_instrumented_by_opentelemetry:
        celery.instrument()


def start_tracing(service_name: str) -> bool:
    """Set this process's tracer provider from ``OTEL_*``, once (``service_name`` where
    ``OTEL_SERVICE_NAME`` names none); whether tracing is on."""
    global _provider
    if _provider is not None:
        return True
    if not tracing_requested():
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    # The sampler comes from OTEL_TRACES_SAMPLER; shutdown_on_exit flushes at a normal exit.
    provider = TracerProvider(resource=resource)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return True


def flush() -> None:
    """Send the spans still batched: a prefork child leaves by ``os._exit``, past atexit."""
    if _provider is not None:
        _provider.force_flush()


def _exporters() -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _exporter_names():
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp_exporter())
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={os.environ['OTEL_TRACES_EXPORTER']!r}: jobcast sends"
                " traces to otlp or console, or none"
            )
    return exporters


def _otlp_exporter() -> SpanExporter:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: jobcast's OTLP exporter speaks"
            " http/protobuf only"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install 'jobcast[otlp]'"
        ) from None
    return OTLPSpanExporter()
