"""Job events: number them, append them to the durable log, push them live.

Every event of a job gets the next ``seq`` from one Redis counter, shared by the web process
(``job.queued``) and the worker (everything after), and is appended to a Redis Stream whose
entry ids are ``0-<seq>``, so a client that missed events can ask for "everything after N".
Only then is it pushed to the owner's Socket.IO room through the message queue. No Flask here:
the worker publishes without an app or request context.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from redis import Redis

# Atomically: next seq, append (stream id 0-seq), and push both keys' expiry forward.
# ARGV[4] = "0" numbers the event without recording it (durability off, for comparison).
_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[1], 'd', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return seq
"""


class Emitter(Protocol):
    """What pushes an event to Socket.IO clients: python-socketio's write-only RedisManager."""

    def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: str | None = None,
        **kwargs: Any,
    ) -> Any: ...


def user_room(user_id: int) -> str:
    """The private room every connection of ``user_id`` joins; events go nowhere else."""
    return f"user:{user_id}"


def _seq_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:seq"


def _log_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:events"


class EventPublisher:
    """Numbers, records and emits job events; one per process, shared by its threads.

    ``redis`` must decode responses (``decode_responses=True``); ``reader``, if given, serves the
    blocking reads and needs a socket timeout longer than any ``block_ms`` asked for.
    """

    def __init__(
        self,
        redis: Redis,
        emitter: Emitter,
        *,
        retention_seconds: int,
        durable: bool = True,
        reader: Redis | None = None,
    ) -> None:
        self.redis = redis
        self.reader = reader or redis
        self.emitter = emitter
        self.retention_seconds = retention_seconds
        self.durable = durable
        self._append = redis.register_script(_APPEND)

    def publish(
        self,
        event: str,
        *,
        job_id: str,
        owner_id: int,
        status: str,
        progress: float,
        message: str | None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Record and emit one event; returns the payload as clients receive it."""
        payload: dict[str, Any] = {
            "job_id": job_id,
            "status": status,
            "progress": round(progress, 2),
            "message": message,
            "ts": time.time(),
            **extra,
        }
        seq = int(
            self._append(
                keys=[_seq_key(job_id), _log_key(job_id)],
                args=[
                    event,
                    json.dumps(payload, separators=(",", ":")),
                    self.retention_seconds,
                    "1" if self.durable else "0",
                ],
            )
        )
        payload = {"job_id": job_id, "seq": seq, **payload}
        self.emitter.emit(event, payload, namespace="/", room=user_room(owner_id))
        return payload

    def history(
        self, job_id: str, after_seq: int = 0, *, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Recorded events of ``job_id`` with seq > ``after_seq``, in order.

        With ``block_ms``, wait up to that long for the first one to be appended (XREAD BLOCK):
        Server-Sent Events follow a job this way without any pub/sub.
        """
        key = _log_key(job_id)
        entries: list[tuple[str, dict[str, str]]]
        if block_ms is None:
            entries = self.redis.xrange(key, min=f"0-{after_seq + 1}", max="+")  # type: ignore[assignment]
        else:
            found = self.reader.xread({key: f"0-{after_seq}"}, block=block_ms)
            entries = found[0][1] if found else []  # type: ignore[index]
        return [
            (
                fields["e"],
                {
                    "job_id": job_id,
                    "seq": int(entry_id.split("-", 1)[1]),
                    **json.loads(fields["d"]),
                },
            )
            for entry_id, fields in entries
        ]

    def forget(self, job_id: str) -> None:
        self.redis.delete(_seq_key(job_id), _log_key(job_id))
