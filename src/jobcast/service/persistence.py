"""Whether the Redis servers jobcast is configured with keep their data across a restart.

Asked by ``jobcast check`` only, over the network with a short timeout: the start-up checks in
``config.unsafe_for_production`` stay offline.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from jobcast.config import Settings
from jobcast.service.procs import without_password


def redis_roles(settings: Settings) -> list[tuple[str, str]]:
    """Each Redis server the settings use, once, with what jobcast keeps in it."""
    brokers = [u.strip() for u in settings.celery_broker_url.split(";") if u.strip()]
    servers: dict[tuple[str | None, int | None], tuple[str, list[str]]] = {}
    for url, holds in [(settings.redis_url, "the jobs' event logs")] + [
        (u, "the queued jobs' broker messages") for u in brokers
    ]:
        parts = urlsplit(url)
        if parts.scheme.partition("+")[0] not in ("redis", "rediss"):
            continue  # an AMQP broker persists by its own rules
        servers.setdefault((parts.hostname, parts.port), (url, []))[1].append(holds)
    return [(url, " and ".join(holds)) for url, holds in servers.values()]


def redis_persistence(url: str, holds: str) -> tuple[str | None, str | None]:
    """(problem, note) about whether the Redis at ``url`` keeps ``holds`` across a restart."""
    shown = without_password(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        config: dict[str, str] = client.config_get("append*")  # type: ignore[assignment]
    except redis.ResponseError as exc:  # CONFIG renamed or not allowed, as managed services do
        return None, (
            f"cannot tell whether Redis at {shown} persists (CONFIG GET: {exc}): make sure it"
            f" keeps an append-only file (appendonly yes, appendfsync everysec), or {holds}"
            " are lost when it restarts"
        )
    except redis.RedisError as exc:
        return f"cannot ask Redis at {shown} whether it persists: {exc}", None
    finally:
        client.close()
    if config.get("appendonly") != "yes":
        return (
            f"Redis at {shown} does not persist (appendonly {config.get('appendonly')}):"
            f" {holds} are lost when it restarts; set appendonly yes, appendfsync everysec"
        ), None
    if config.get("appendfsync") == "no":
        return None, (
            f"Redis at {shown} leaves fsync to the OS (appendfsync no): a machine crash may"
            f" lose the last seconds of {holds}; set appendfsync everysec"
        )
    return None, None
