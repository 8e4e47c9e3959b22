"""Per-app runtime objects (Redis client, event publisher, storage, signer) in app.extensions.

Built once by ``create_app`` and shared by the web views and the worker tasks of that app;
``current_runtime()`` finds them from inside any app context.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app
from redis import BlockingConnectionPool, Redis

from jobcast.config import Settings
from jobcast.jobs.events import EventPublisher
from jobcast.jobs.lease import Leases
from jobcast.jobs.registry import Registry
from jobcast.jobs.results import DownloadSigner
from jobcast.storage import LocalStorage, ResultStorage


@dataclass
class Runtime:
    settings: Settings
    registry: Registry
    redis: Redis
    events: EventPublisher
    leases: Leases
    storage: ResultStorage
    signer: DownloadSigner
    celery: Celery


def init_runtime(app: Flask, settings: Settings, registry: Registry, celery: Celery) -> Runtime:
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
        events=EventPublisher(
            redis,
            channel=settings.socketio_channel,
            retention_seconds=int(settings.event_retention_hours * 3600),
            durable=settings.durable_events,
            reader=stream_reader,
        ),
        leases=Leases(redis, ttl=settings.job_lease_seconds),
        storage=LocalStorage(settings.storage_dir),
        signer=DownloadSigner(
            app.config["SECRET_KEY"],
            max_age_seconds=settings.download_url_minutes * 60,
            public_url=settings.public_url,
        ),
        celery=celery,
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
