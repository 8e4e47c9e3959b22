"""Job events: number them, append them to the durable log, push them live.

Every event of a job gets the next ``seq`` from one Redis counter, shared by the web process
(``job.queued``) and the worker (everything after), and is appended to a Redis Stream whose
entry ids are ``<epoch>-<seq>``, so a client that missed events can ask for "everything after
this one". The epoch is the Redis server's clock (ms) when the job's counter was created: it
changes only when the counter is gone (Redis lost its data, or the log expired), and numbering
starts again at 1 under a larger epoch. Clients order events by (epoch, seq), as the stream
does, so a renumbered event is never taken for one already seen (Centrifugo's stream epochs).
The same Lua script then publishes it live, framed for the web processes' Socket.IO client
manager by a ``realtime.wire`` (encoded once here): one round trip per event. No Flask here: the
worker publishes without an app or request context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any, NamedTuple

import orjson
from redis import Redis

from jobcast.realtime.wire import Wire

# Atomically: next seq (a new counter takes the server's clock as its epoch), append (stream id
# epoch-seq), push the keys' expiry forward, publish. ARGV[4] = "0" numbers the event without
# recording it (durability off, for comparison). The live message is ARGV[5] .. seq .. epoch ..
# ARGV[6]: the payload is encoded once, in Python, and only what is known here is spliced in.
# With KEYS[3] (a cancellation flag, '' for none) set, nothing is numbered or sent and the
# script returns -1: the job stops instead of reporting progress. With KEYS[5], the broker
# message ARGV[8] is pushed onto that Celery queue in the same step (``job.queued``: the
# numbered event then proves the job was sent), and Celery's events about it (channel, message
# pairs from ARGV[9]) are published after it. A counter from before epochs has epoch 0.
_APPEND = """
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  return {-1, '0'}
end
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local epoch
if seq == 1 then
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%03d', math.floor(now[2] / 1000))
  redis.call('SET', KEYS[4], epoch, 'EX', ARGV[3])
else
  epoch = redis.call('GET', KEYS[4]) or '0'
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[2], epoch .. '-' .. seq, 'e', ARGV[1], 'd', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if KEYS[5] then
  redis.call('LPUSH', KEYS[5], ARGV[8])
  for i = 9, #ARGV, 2 do
    redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
  end
end
redis.call('PUBLISH', ARGV[7], ARGV[5] .. seq .. ',"epoch":' .. epoch .. ARGV[6])
return {seq, epoch}
"""


def _seq_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:seq"


def _log_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:events"


def _epoch_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:epoch"


class After(NamedTuple):
    """Where a replay starts: after event ``seq`` of numbering ``epoch``. ``After()`` is the
    beginning; an epoch of None means the job's current one (a client from before epochs)."""

    seq: int = 0
    epoch: int | None = 0

    @classmethod
    def parse(cls, event_id: str | None) -> After:
        """An SSE ``Last-Event-ID``: ``<epoch>-<seq>``, or a bare ``<seq>`` (the current
        epoch); the beginning when absent or malformed. A part past 64 bits (a Redis stream
        id's range) is past every event: the client says it has seen them all."""
        epoch, dash, seq = (event_id or "").strip().rpartition("-")
        try:
            numbers = (int(seq), int(epoch) if dash else None)
        except ValueError:
            return cls()
        if numbers[0] < 0 or (numbers[1] or 0) < 0:
            return cls()
        last = 2**63 - 1
        return cls(min(numbers[0], last), None if numbers[1] is None else min(numbers[1], last))

    def event_id(self) -> str:
        return f"{self.epoch or 0}-{self.seq}"


def cancel_key(job_id: str) -> str:
    """Set when the owner asks to cancel the job; a running job checks it at checkpoints."""
    return f"jobcast:job:{job_id}:cancel"


class Cancelled(Exception):
    """The job's cancellation flag was set: the event was not published."""


class EventPublisher:
    """Numbers, records and emits job events; one per process, shared by its threads.

    ``redis`` must decode responses (``decode_responses=True``); ``reader``, if given, serves the
    blocking reads and needs a socket timeout longer than any ``block_ms`` asked for.
    ``wire`` frames the live message for the web processes' Socket.IO client manager.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        wire: Wire,
        retention_seconds: int,
        durable: bool = True,
        reader: Redis | None = None,
    ) -> None:
        self.redis = redis
        self.reader = reader or redis
        self.wire = wire
        self.retention_seconds = retention_seconds
        self.durable = durable
        self._append = redis.register_script(_APPEND)

    def publish(
        self,
        event: str,
        *,
        job_id: str,
        owner_id: str,
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
        live = self.wire.frame(event, job_id, owner_id, body)
        seq, epoch = self._append(
            keys=[
                _seq_key(job_id),
                _log_key(job_id),
                cancel_key(job_id) if unless_cancelled else "",
                _epoch_key(job_id),
                *([enqueue[0]] if enqueue else []),
            ],
            args=[
                event,
                body,
                self.retention_seconds,
                "1" if self.durable else "0",
                live.head,
                live.tail,
                live.channel,
                *([enqueue[1], *chain.from_iterable(enqueue_events)] if enqueue else []),
            ],
        )
        seq = int(seq)
        if seq < 0:
            raise Cancelled(job_id)
        return {"job_id": job_id, "seq": seq, "epoch": int(epoch), **payload}

    def history(
        self, job_id: str, after: int | After = 0, *, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Recorded events of ``job_id`` after ``after`` (a bare int: that seq of the current
        epoch), in (epoch, seq) order: a renumbering's events follow the older ones.

        With ``block_ms``, wait up to that long for the first one to be appended (XREAD BLOCK):
        Server-Sent Events follow a job this way without any pub/sub.
        """
        if not isinstance(after, After):
            after = After(after, None) if after > 0 else After()  # 0: the beginning
        if after.epoch is None:
            current: str | None = self.redis.get(_epoch_key(job_id))  # type: ignore[assignment]
            after = After(after.seq, int(current or 0))
        key = _log_key(job_id)
        entries: list[tuple[str, dict[str, str]]]
        if block_ms is None:
            start = f"{after.epoch}-{after.seq + 1}"
            entries = self.redis.xrange(key, min=start, max="+")  # type: ignore[assignment]
        else:
            found = self.reader.xread({key: after.event_id()}, block=block_ms)
            entries = found[0][1] if found else []  # type: ignore[index]
        events = []
        for entry_id, fields in entries:
            epoch, _, seq = entry_id.partition("-")
            payload = {"job_id": job_id, "seq": int(seq), "epoch": int(epoch)}
            events.append((fields["e"], {**payload, **json.loads(fields["d"])}))
        return events

    def numbered(self, job_id: str) -> bool:
        """Whether any event of ``job_id`` was numbered (within the retention)."""
        return bool(self.redis.exists(_seq_key(job_id)))

    def forget(self, job_id: str) -> None:
        self.redis.delete(_seq_key(job_id), _log_key(job_id), _epoch_key(job_id))
