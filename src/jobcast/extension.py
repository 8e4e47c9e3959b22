"""``Jobcast``: what a Flask app adds to hand work to Celery and show it live.

``init_app`` wires jobcast's parts into a host app and touches nothing else of it: one
blueprint at ``url_prefix``, handlers on one Socket.IO namespace, jobcast's own tables and
sessions, jobcast's tasks on the host's Celery, and ``app.extensions["jobcast"]``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery, Task
from flask import Flask
from flask_socketio import SocketIO
from socketio import PubSubManager
from sqlalchemy.engine import Engine

from jobcast.celery_settings import beat_schedule, celery_config
from jobcast.config import Settings, settings_from_config
from jobcast.db.database import Database, db
from jobcast.db.tables import Base
from jobcast.db.tables import Job as JobRow
from jobcast.errors import ConfigError
from jobcast.identity import BaseIdentity, Identity, owner_str
from jobcast.jobs import service
from jobcast.jobs.registry import registry
from jobcast.realtime.pubsub import UserChannelManager
from jobcast.realtime.wire import ManagerWire, UserChannelWire, Wire
from jobcast.runtime import Runtime, init_runtime, runtime_of
from jobcast.telemetry import metrics

log = logging.getLogger(__name__)


class _Nobody(BaseIdentity):
    """No identity given: every request is anonymous, so every jobcast route answers 401."""

    def request_owner(self) -> str | None:
        return None


@dataclass(frozen=True)
class Job:
    """A job as its owner sees it: the fields of the API's job object (``GET {prefix}/jobs/<id>``,
    a result file's download link signed now), and ``to_dict()`` for a host's own JSON."""

    id: str
    type: str
    status: str
    progress: float
    message: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    trace_id: str | None

    @classmethod
    def of(cls, row: JobRow) -> Job:
        return cls(**service.to_dict(row))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Jobcast:
    """The extension; ``Jobcast(app, **options)`` or ``Jobcast()`` then ``init_app``.

    Options: ``db`` (a Flask-SQLAlchemy instance, an SQLAlchemy Engine, or None for
    ``JOBCAST_DATABASE_URL``), ``celery`` (the host's Celery app, or None for one made here),
    ``socketio`` (the host's ``SocketIO`` with a message queue, or None for one made here),
    ``identity`` (who owns a job: ``jobcast.identity``), ``url_prefix`` and ``namespace``
    (default ``JOBCAST_URL_PREFIX`` and ``JOBCAST_NAMESPACE``), ``settings`` (a ready
    ``Settings``, instead of the ``JOBCAST_*`` keys of ``app.config``).
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self._options = options
        self._app: Flask | None = None
        if app is not None:
            self.init_app(app, **options)

    def init_app(
        self,
        app: Flask,
        *,
        db: Any = None,
        celery: Celery | None = None,
        socketio: SocketIO | None = None,
        identity: Identity | None = None,
        url_prefix: str | None = None,
        namespace: str | None = None,
        settings: Settings | None = None,
    ) -> Runtime:
        from jobcast.api import views as api
        from jobcast.db.cli import cli
        from jobcast.jobs.tasks import register_tasks
        from jobcast.realtime.handlers import register_handlers

        options = {**self._options}
        settings = settings or settings_from_config(app.config)
        prefix = url_prefix if url_prefix is not None else settings.url_prefix
        if not prefix.strip("/"):
            raise ConfigError(
                f"url_prefix={prefix!r}: jobcast's blueprint needs a path of its own (e.g."
                " /jobcast), or its catch-all would answer every unknown path of the app"
            )
        namespace = namespace or settings.namespace
        if not app.config.get("SECRET_KEY"):
            raise ConfigError("jobcast signs download links with the app's SECRET_KEY: set it")
        database = _database(db if db is not None else options.get("db"), settings)
        given_celery = celery or options.get("celery")
        celery = given_celery or _make_celery(app, settings)
        socketio = socketio or options.get("socketio") or _make_socketio(app, settings)
        _load_job_modules(settings)
        _check_visibility(celery, "JOBCAST_VISIBILITY_TIMEOUT" if given_celery is None else None)
        runtime = init_runtime(
            app,
            settings,
            registry.for_settings(settings),
            celery=celery,
            database=database,
            identity=identity or options.get("identity") or _Nobody(),
            socketio=socketio,
            wire=_wire(socketio, namespace),
            namespace=namespace,
            url_prefix=prefix,
        )
        metrics.instrument(runtime)
        register_tasks(celery, app)
        app.register_blueprint(api.bp, url_prefix=prefix or None)
        register_handlers(socketio, namespace)
        app.teardown_appcontext(database.remove)
        app.cli.add_command(cli)
        self._app = app
        return runtime

    # --- for host code: start, read and cancel jobs from the host's own views --------------

    def submit(self, type_name: str, params: dict[str, Any] | None = None, *, owner: object) -> Job:
        """Validate, record and queue a job for ``owner``; raises jobcast's ApiErrors."""
        job, _ = service.submit(owner_str(owner), type_name, params, request_id=None)
        return Job.of(job)

    def get(self, job_id: str, *, owner: object) -> Job:
        """The job, if ``owner`` owns it; NotFound otherwise (never another owner's)."""
        return Job.of(service.get_owned(owner_str(owner), job_id))

    def cancel(self, job_id: str, *, owner: object) -> Job:
        return Job.of(service.cancel(owner_str(owner), job_id))

    def disconnect(self, owner: object) -> None:
        """End ``owner``'s live sockets and event streams (a host's logout view): here at once,
        on every other web process at its next check (``JOBCAST_SOCKET_AUTH_CHECK_SECONDS``)."""
        owner = owner_str(owner)
        sockets = runtime_of(self._require_app()).sockets
        sockets.endings.end(owner)
        for sid in sockets.sids_of(owner):
            sockets.end(sid, "auth.revoked")

    def beat_schedule(self) -> dict[str, dict[str, Any]]:
        """jobcast's housekeeping tasks for the host's Celery beat (recover lost jobs, send
        stuck ones again, expire result files), routed to jobcast's queue:
        ``celery.conf.beat_schedule.update(jobcast.beat_schedule())``."""
        return beat_schedule(runtime_of(self._require_app()).settings)

    def create_all(self) -> None:
        """Create jobcast's tables (inside an app context): for tests and quick starts."""
        Base.metadata.create_all(db.engine)

    def _require_app(self) -> Flask:
        if self._app is None:
            raise RuntimeError("Jobcast.init_app(app) has not been called")
        return self._app


def _database(given: Any, settings: Settings) -> Database:
    if given is None:
        if not settings.database_url:
            raise ConfigError("jobcast needs db=... or JOBCAST_DATABASE_URL")
        return Database.from_url(settings.database_url, pool_pre_ping=True)
    if isinstance(given, Engine):
        return Database(given)
    if hasattr(type(given), "engines"):  # Flask-SQLAlchemy: its engine exists once its init_app ran
        return Database(lambda: given.engine)
    raise ConfigError(
        f"db must be a Flask-SQLAlchemy instance or an SQLAlchemy Engine, not {given!r}"
    )


def _make_celery(app: Flask, settings: Settings) -> Celery:
    """Flask's documented ``celery_init_app`` pattern, for jobcast's tasks; never the default
    app of the process (``set_default``), which is the host's to choose."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(settings))
    return celery


def socketio_options(settings: Settings) -> dict[str, Any]:
    """The server settings of a ``SocketIO`` jobcast makes (the service's too): jobcast's
    per-user channel manager and codec, the ``JOBCAST_SOCKET_*`` limits, the CORS origins."""
    from jobcast.realtime import jsoncodec

    return {
        "client_manager": UserChannelManager(settings.redis_url, channel=settings.socketio_channel),
        "json": jsoncodec,
        "async_mode": settings.async_mode,
        "max_http_buffer_size": settings.socket_max_message_bytes,
        "ping_interval": settings.socket_ping_interval,
        "ping_timeout": settings.socket_ping_timeout,
        "cors_allowed_origins": settings.origins or None,
    }


def _make_socketio(app: Flask, settings: Settings) -> SocketIO:
    return SocketIO(app, **socketio_options(settings))


def _wire(socketio: SocketIO, namespace: str) -> Wire:
    """How workers reach this app's sockets: through its Socket.IO message queue."""
    manager = socketio.server.manager if socketio.server is not None else None
    if isinstance(manager, UserChannelManager):
        return UserChannelWire(manager.channel, namespace)
    if isinstance(manager, PubSubManager):
        return ManagerWire(manager.channel, namespace)
    raise ConfigError(
        "jobcast's workers reach browsers through the SocketIO's message queue: make it with"
        " SocketIO(app, message_queue=JOBCAST_REDIS_URL), before Jobcast(app, socketio=...)"
    )


def _load_job_modules(settings: Settings) -> None:
    """Import the modules whose ``@job`` functions fill the registry (web and worker alike)."""
    for name in filter(None, (m.strip() for m in settings.job_modules.split(","))):
        importlib.import_module(name)


def _check_visibility(celery: Celery, setting: str | None) -> None:
    """Warn of job types that may outlast the broker's visibility timeout: the Redis broker
    hands an unacknowledged message to another worker after it, and a job that runs longer
    would then run twice at once. ``setting`` names where the timeout comes from when jobcast
    made the Celery app; a host's is its own ``broker_transport_options``."""
    options = celery.conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", _KOMBU_VISIBILITY_TIMEOUT))
    where = setting or "broker_transport_options['visibility_timeout'] of the app's Celery"
    for job_type in registry:
        longest = job_type.time_limit + 30 + job_type.retry_backoff_max
        if longest >= timeout:
            log.warning(
                "job type %s may hold its message %g s, longer than %s (%g s); raise the"
                " timeout or lower the time limit",
                job_type.name,
                longest,
                where,
                timeout,
            )


#: kombu's Redis transport's default, where the app's Celery sets none.
_KOMBU_VISIBILITY_TIMEOUT = 3600
