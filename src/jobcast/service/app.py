"""The application factory: a table of contents that wires the parts together."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask_cors import CORS
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from jobcast.celery_settings import celery_config
from jobcast.config import Settings, flask_config, load_settings
from jobcast.db.database import sqlite_pragmas
from jobcast.extension import Jobcast, socketio_options
from jobcast.jobs.tooling import name_sent_events_by_type
from jobcast.logs import configure_logging
from jobcast.realtime import jsoncodec
from jobcast.runtime import runtime_of
from jobcast.service.auth.identity import ServiceIdentity
from jobcast.service.extensions import celery_init_app, db, jwt, limiter, socketio
from jobcast.service.serving.broker import transport_for
from jobcast.service.serving.bulkhead import ApiBulkhead
from jobcast.service.serving.handshake import PlainWebSockets
from jobcast.service.serving.lean_sockets import use_lean_sockets
from jobcast.telemetry.otel_setup import trace_app

log = logging.getLogger(__name__)

_SIGN_IN = (
    "Sign in with `POST /api/v1/auth/login` and send the access token as"
    " `Authorization: Bearer <token>`."
)


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build a jobcast app; ``config`` overrides ``JOBCAST_*`` settings by field name."""
    settings = config if isinstance(config, Settings) else load_settings(config)
    app = Flask("jobcast", instance_relative_config=False)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep schemas in author order
    app.config.from_mapping(flask_config(settings))
    # The service's Redis transport (serving/broker.py) for a Redis broker; kombu's for others.
    app.config["CELERY"] = {
        **celery_config(settings),
        "broker_transport": transport_for(settings.celery_broker_url),
    }
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    configure_logging(settings.log_level, settings.log_style)

    db.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    if settings.origins:
        CORS(
            app,
            resources={r"/api/*": {"origins": settings.origins}},
            expose_headers=["Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed"],
        )
    socketio.init_app(
        app,
        **socketio_options(settings),
        serializer=jsoncodec.Packet,
        # No per-socket copy of the Flask session: handlers find the user in the sockets
        # registry (realtime/sessions.py), and every idle connection is memory (performance.md).
        manage_session=False,
    )
    if settings.async_mode == "gevent":
        use_lean_sockets(socketio.server.eio)
    app.wsgi_app = PlainWebSockets(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = ApiBulkhead(  # type: ignore[method-assign]
        app.wsgi_app, settings.web_api_concurrency, settings.max_body_bytes
    )
    celery = celery_init_app(app)
    name_sent_events_by_type(celery)
    with app.app_context():
        event.listen(db.engine, "connect", sqlite_pragmas)
    Jobcast(
        app,
        db=db,
        celery=celery,
        socketio=socketio,
        identity=ServiceIdentity(),
        url_prefix="/api/v1",
        namespace="/",
        settings=settings,
    )
    runtime_of(app).sign_in = _SIGN_IN
    _register(app)
    trace_app(app)  # OTEL_TRACES_EXPORTER: spans of requests, messages and jobs; else nothing
    return app


def _register(app: Flask) -> None:
    from jobcast.api.http import register_http
    from jobcast.service import health
    from jobcast.service.admin import views as admin_views
    from jobcast.service.apidocs import views as apidocs_views
    from jobcast.service.auth import views as auth_views
    from jobcast.service.auth.tokens import init_tokens
    from jobcast.service.web import views as web_views

    register_http(app)
    init_tokens(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(admin_views.bp)
    app.register_blueprint(apidocs_views.bp)
    app.register_blueprint(web_views.bp)
