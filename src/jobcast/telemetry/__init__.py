"""What jobcast tells operators: Prometheus metrics, OpenTelemetry spans, structured logs.

Each is a guest in a host app too: metrics go to prometheus_client's registry (the host's),
spans to the global tracer provider (the host's, or a no-op), and nothing here configures
either unless the jobcast service asks it to.
"""
