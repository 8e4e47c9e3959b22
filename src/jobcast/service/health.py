"""Liveness and readiness probes for load balancers and orchestrators, and the metrics for
Prometheus.

``GET /metrics`` is open in development and testing (checked there too when a token is set);
in production it is off (404) unless ``JOBCAST_METRICS_TOKEN`` is set, and then answers only a
scraper that sends it as a Bearer token. With ``JOBCAST_METRICS`` off it is 404 everywhere.
It is not in the OpenAPI document: it is the operators', not the API's.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from jobcast.api.openapi.describe import Reply, operation
from jobcast.api.schemas import Health, Readiness
from jobcast.errors import Unauthorized
from jobcast.runtime import current_runtime
from jobcast.service.extensions import db
from jobcast.telemetry.scrape import metrics_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@operation(
    summary="Liveness",
    tag="health",
    operation_id="healthz",
    auth="none",
    backed=False,
    replies={200: Reply("The process serves requests.", Health)},
)
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(
    summary="Readiness: the database and Redis answer",
    tag="health",
    operation_id="readyz",
    auth="none",
    replies={
        200: Reply("Ready.", Readiness),
        503: Reply("Not ready: the failing checks say unavailable.", Readiness),
    },
)
def readyz() -> tuple[Response, int]:
    checks = {"database": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        checks["database"] = "unavailable"
    rt = current_runtime()
    try:
        rt.redis.ping()
    except RedisError:
        checks["redis"] = "unavailable"
    if rt.settings.broker_url and rt.settings.broker_url != rt.settings.redis_url:
        checks["broker"] = "ok"
        try:
            with rt.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception:  # kombu raises the transport's own errors
            checks["broker"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), (
        200 if ready else 503
    )


@bp.get("/metrics")
def metrics() -> Response:
    settings = current_runtime().settings
    token = settings.metrics_token
    if not settings.metrics or (settings.env == "production" and not token):
        abort(404)
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise Unauthorized(
                "send the metrics token as Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return metrics_response()
