"""Job events: number them, append them to the durable log, push them live.

Every event of a job gets the next ``seq`` from one Redis counter, shared by the web process
(``job.queued``) and the worker (everything after), and is appended to a Redis Stream whose
entry ids are ``0-<seq>``, so a client that missed events can ask for "everything after N".
The same Lua script then publishes it on the owner's own channel (``<channel>:user:<id>``) as
the Socket.IO packet the owner's connections receive, encoded once here: one round trip per
event, and the web processes holding one of that user's connections (``realtime.pubsub``) pass
it on without decoding it. No Flask
here: the worker publishes without an app or request context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any

import orjson
from redis import Redis

# Atomically: next seq, append (stream id 0-seq), push both keys' expiry forward, publish.
# ARGV[4] = "0" numbers the event without recording it (durability off, for comparison).
# The live message is ARGV[5] .. seq .. ARGV[6]: the payload is encoded once, in Python, and
# only the seq, known here, is spliced in. With KEYS[3] (a cancellation flag, '' for none) set,
# nothing is numbered or sent and the script returns -1: the job stops instead of reporting
# progress. With KEYS[4], the broker message ARGV[8] is pushed onto that Celery queue in the
# same step (``job.queued``: the numbered event then proves the job was sent), and Celery's
# events about it (channel, message pairs from ARGV[9]) are published after it.
_APPEND = """
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[1], 'd', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if KEYS[4] then
  redis.call('LPUSH', KEYS[4], ARGV[8])
  for i = 9, #ARGV, 2 do
    redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
  end
end
redis.call('PUBLISH', ARGV[7], ARGV[5] .. seq .. ARGV[6])
return seq
"""


def user_room(user_id: int) -> str:
    """The private room every connection of ``user_id`` joins; events go nowhere else."""
    return f"user:{user_id}"


def user_channel(channel: str, user_id: int | str) -> str:
    """The Redis channel carrying the live events of ``user_id``'s room."""
    return f"{channel}:user:{user_id}"


def _seq_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:seq"


def _log_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:events"


def cancel_key(job_id: str) -> str:
    """Set when the owner asks to cancel the job; a running job checks it at checkpoints."""
    return f"jobcast:job:{job_id}:cancel"


class Cancelled(Exception):
    """The job's cancellation flag was set: the event was not published."""


class EventPublisher:
    """Numbers, records and emits job events; one per process, shared by its threads.

    ``redis`` must decode responses (``decode_responses=True``); ``reader``, if given, serves the
    blocking reads and needs a socket timeout longer than any ``block_ms`` asked for.
    ``channel`` is the Socket.IO message-queue channel the web processes listen on.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        channel: str,
        retention_seconds: int,
        durable: bool = True,
        reader: Redis | None = None,
    ) -> None:
        self.redis = redis
        self.reader = reader or redis
        self.channel = channel
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
        unless_cancelled: bool = False,
        enqueue: tuple[str, str] | None = None,
        enqueue_events: Sequence[tuple[str, str]] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        """Record and emit one event; returns the payload as clients receive it.

        With ``unless_cancelled``, raise Cancelled instead when the job's cancellation flag is
        set (checked in the same round trip): a running job's progress checkpoint. With
        ``enqueue`` (a broker list key and a message for it, see ``jobcast.broker``), push the
        message in the same atomic step, then publish ``enqueue_events`` (pub/sub channel and
        message pairs: Celery's ``task-sent`` event about it).
        """
        payload: dict[str, Any] = {
            "status": status,
            "progress": round(progress, 2),
            "message": message,
            "ts": time.time(),
            **extra,
        }
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS).decode()
        # A Socket.IO EVENT packet on the default namespace: 2["<event>",{payload with seq}].
        head = f'2[{json.dumps(event)},{{"job_id":{json.dumps(job_id)},"seq":'
        seq = int(
            self._append(
                keys=[
                    _seq_key(job_id),
                    _log_key(job_id),
                    cancel_key(job_id) if unless_cancelled else "",
                    *([enqueue[0]] if enqueue else []),
                ],
                args=[
                    event,
                    body,
                    self.retention_seconds,
                    "1" if self.durable else "0",
                    head,
                    "," + body[1:] + "]",
                    user_channel(self.channel, owner_id),
                    *([enqueue[1], *chain.from_iterable(enqueue_events)] if enqueue else []),
                ],
            )
        )
        if seq < 0:
            raise Cancelled(job_id)
        return {"job_id": job_id, "seq": seq, **payload}

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

    def numbered(self, job_id: str) -> bool:
        """Whether any event of ``job_id`` was numbered (within the retention)."""
        return bool(self.redis.exists(_seq_key(job_id)))

    def forget(self, job_id: str) -> None:
        self.redis.delete(_seq_key(job_id), _log_key(job_id))
