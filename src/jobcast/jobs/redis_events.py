"""The event log in Redis: a counter, a Stream and a pub/sub channel per job event, one Lua
script per event.

The seq comes from one Redis counter per job; the log is a Redis Stream whose entry ids are
``<epoch>-<seq>``, the epoch being the Redis server's clock (ms) when the job's counter was
created. The same script publishes the live message: one round trip per event, and the web
processes pass it on without decoding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from redis import Redis

from jobcast.jobs.events import After, EventLog
from jobcast.realtime.wire import Frame, Wire

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


def log_key(job_id: str) -> str:
    """The job's Stream (benchmarks read it directly)."""
    return f"jobcast:job:{job_id}:events"


def _epoch_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:epoch"


def _cancel_key(job_id: str) -> str:
    """Set when the owner asks to cancel the job; a running job checks it at checkpoints."""
    return f"jobcast:job:{job_id}:cancel"


class RedisEventLog(EventLog):
    """``redis`` must decode responses (``decode_responses=True``); ``reader``, if given, serves
    the blocking reads and needs a socket timeout longer than any ``block_ms`` asked for."""

    def __init__(
        self,
        redis: Redis,
        *,
        wire: Wire,
        retention_seconds: int,
        durable: bool = True,
        reader: Redis | None = None,
    ) -> None:
        super().__init__(wire=wire, retention_seconds=retention_seconds, durable=durable)
        self.redis = redis
        self.reader = reader or redis
        self._script = redis.register_script(_APPEND)

    def _append(
        self,
        job_id: str,
        event: str,
        body: str,
        live: Frame,
        unless_cancelled: bool,
        enqueue: tuple[str, str] | None,
        enqueue_events: Sequence[tuple[str, str]],
    ) -> tuple[int, int] | None:
        seq, epoch = self._script(
            keys=[
                _seq_key(job_id),
                log_key(job_id),
                _cancel_key(job_id) if unless_cancelled else "",
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
        return None if int(seq) < 0 else (int(seq), int(epoch))

    def _current_epoch(self, job_id: str) -> int:
        current: str | None = self.redis.get(_epoch_key(job_id))  # type: ignore[assignment]
        return int(current or 0)

    def _read(
        self, job_id: str, after: After, block_ms: int | None
    ) -> list[tuple[int, int, str, str]]:
        key = log_key(job_id)
        entries: list[tuple[str, dict[str, str]]]
        if block_ms is None:
            start = f"{after.epoch}-{after.seq + 1}"
            entries = self.redis.xrange(key, min=start, max="+")  # type: ignore[assignment]
        else:
            found = self.reader.xread({key: after.event_id()}, block=block_ms)
            entries = found[0][1] if found else []  # type: ignore[index]
        read = []
        for entry_id, fields in entries:
            epoch, _, seq = entry_id.partition("-")
            read.append((int(epoch), int(seq), fields["e"], fields["d"]))
        return read

    def numbered(self, job_id: str) -> bool:
        return bool(self.redis.exists(_seq_key(job_id)))

    def forget(self, job_id: str) -> None:
        self.redis.delete(_seq_key(job_id), log_key(job_id), _epoch_key(job_id))

    def request_cancel(self, job_id: str) -> None:
        self.redis.set(_cancel_key(job_id), "1", ex=self.retention_seconds)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(_cancel_key(job_id)))
