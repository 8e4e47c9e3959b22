"""Per-app runtime objects (Redis client, event publisher, storage, signer...) in
``app.extensions["jobcast"]``.

Built once by ``Jobcast.init_app`` and shared by the web views and the worker tasks of that app;
``current_runtime()`` finds them from inside any app context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from celery import Celery
from flask import Flask, current_app
from flask_socketio import SocketIO
from redis import BlockingConnectionPool, Redis

from jobcast.config import Settings, limits_storage
from jobcast.db.database import Database
from jobcast.identity import Identity
from jobcast.jobs.events import EventLog
from jobcast.jobs.hold import honours_holds
from jobcast.jobs.lease import Leases
from jobcast.jobs.ratelimit import SubmitLimit
from jobcast.jobs.redis_events import RedisEventLog
from jobcast.jobs.registry import Bound, Registry, queue_names
from jobcast.jobs.results import DownloadSigner
from jobcast.realtime.sessions import Endings, PerUserCount, SocketSessions
from jobcast.realtime.wire import Wire
from jobcast.storage import ResultStorage, make_storage


@dataclass
class Runtime:
    settings: Settings
    registry: Registry
    redis: Redis
    events: EventLog
    leases: Leases
    storage: ResultStorage
    signer: DownloadSigner
    celery: Celery
    database: Database
    identity: Identity
    socketio: SocketIO
    sockets: SocketSessions
    url_prefix: str
    # Open Server-Sent Events streams per owner in this process.
    streams: PerUserCount = field(default_factory=PerUserCount)
    # How a client signs in, for the OpenAPI document (the app's business, not jobcast's).
    sign_in: str = ""
    # None when JOBCAST_RATE_LIMITS is off.
    submit_limit: SubmitLimit | None = None
    openapi: bytes | None = None

    @property
    def queues(self) -> dict[Bound, str]:
        return queue_names(self.settings.queue_prefix)

    @property
    def atomic_dispatch(self) -> bool:
        """Whether a job's ``job.queued`` event and its broker message go in one Lua step: only
        through a transport that holds publishes (the service's Redis transport) on the event
        log's own server, never a host Celery's ordinary one (``jobs.hold``)."""
        conf = self.celery.conf
        return honours_holds(conf.broker_transport) and conf.broker_url == self.settings.redis_url


def init_runtime(
    app: Flask,
    settings: Settings,
    registry: Registry,
    *,
    celery: Celery,
    database: Database,
    identity: Identity,
    socketio: SocketIO,
    wire: Wire,
    namespace: str,
    url_prefix: str,
) -> Runtime:
    # One connection per concurrent request or job at most; past that, wait rather than fail.
    max_connections = max(settings.web_threads, settings.io_concurrency) + 20
    redis = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=max_connections,
            timeout=10,
            decode_responses=True,
            health_check_interval=30,
            socket_connect_timeout=3,
            socket_timeout=10,
        )
    )
    # Server-Sent Events wait on XREAD BLOCK for a whole keep-alive period: a longer timeout.
    stream_reader = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=settings.sse_keepalive_seconds + 10,
    )
    runtime = Runtime(
        settings=settings,
        registry=registry,
        redis=redis,
        events=RedisEventLog(
            redis,
            wire=wire,
            retention_seconds=int(settings.event_retention_hours * 3600),
            durable=settings.durable_events,
            reader=stream_reader,
        ),
        leases=Leases(redis, ttl=settings.job_lease_seconds),
        storage=make_storage(settings),
        signer=DownloadSigner(
            app.config["SECRET_KEY"],
            max_age_seconds=settings.download_url_minutes * 60,
            public_url=settings.public_url,
            prefix=url_prefix,
        ),
        celery=celery,
        database=database,
        identity=identity,
        socketio=socketio,
        sockets=SocketSessions(
            app,
            socketio,
            identity,
            Endings(redis, keep_seconds=3 * settings.socket_auth_check_seconds),
            namespace=namespace,
            per_user=settings.max_sockets_per_user,
            every=settings.socket_auth_check_seconds,
        ),
        url_prefix=url_prefix,
        submit_limit=SubmitLimit(limits_storage(settings.redis_url))
        if settings.rate_limits
        else None,
    )
    app.extensions["jobcast"] = runtime
    return runtime


def open_connections(redis: Redis, count: int) -> None:
    """Open ``count`` connections of ``redis``'s pool now, before any job needs them.

    A gevent worker's jobs each hold a connection while they publish, and the pool opens one only
    when every open one is busy. Opening one (connect, the client's introductions) takes several
    round trips and greenlet switches, so a moment that needed 60 more at once held those events
    back 50-180 ms (the after-the-burst stalls of ``bench latency``, docs/performance.md). Opened
    here, at start-up, they cost nobody's event.
    """
    pool = redis.connection_pool
    opened = [pool.get_connection() for _ in range(count)]
    for connection in opened:
        pool.release(connection)


def current_runtime() -> Runtime:
    return runtime_of(current_app)


def runtime_of(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["jobcast"]
    return runtime
