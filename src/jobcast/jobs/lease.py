"""Leases on running jobs: proof, in Redis, that one attempt is alive right now.

Two deliveries of one job can meet: the sweeper re-dispatches a job whose first message was
slow, or the broker restores a message whose worker died. A lease is taken with SET NX, so
only one attempt runs; a heartbeat keeps it while the attempt lives, and it lapses within
``ttl`` seconds of a crash, after which a later delivery may run the job again.

One heartbeat serves every lease of the process, extending them all in one pipelined round
trip: a thread per attempt cost a start and a join per job, most of a no-op job's lease cost.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

# Extend or release only our own lease (the holder may have lost it to a lapse and a new attempt).
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(job_id: str) -> str:
    return f"jobcast:job:{job_id}:lease"


@dataclass(frozen=True, slots=True)
class Lease:
    """One attempt's hold on its job, from ``Leases.acquire`` until ``release()``."""

    keeper: Leases
    key: str
    token: str

    def release(self) -> None:
        self.keeper.release(self)

    def let_lapse(self) -> None:
        """Stop keeping the lease and let it expire on its own, without a round trip: for a
        job that finished, which no later delivery can run again anyway."""
        self.keeper.forget(self)


class Leases:
    """This process's leases, all kept alive by one heartbeat; one per Redis client, shared by
    the process's threads (or greenlets)."""

    def __init__(self, redis: Redis, *, ttl: float) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl * 1000)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._beat: threading.Thread | None = None

    def acquire(self, job_id: str) -> Lease | None:
        """Take ``job_id``'s lease if nobody holds it; None if another attempt does."""
        lease = Lease(self, lease_key(job_id), uuid.uuid4().hex)
        if not self.redis.set(lease.key, lease.token, nx=True, px=self.ttl_ms):
            return None
        with self._lock:
            self._held[lease.key] = lease.token
            if self._beat is None:
                self._beat = threading.Thread(target=self._heartbeat, name="leases", daemon=True)
                self._beat.start()
        return lease

    def release(self, lease: Lease) -> None:
        self.forget(lease)
        self._release(keys=[lease.key], args=[lease.token])

    def forget(self, lease: Lease) -> None:
        """Stop extending ``lease`` (not a newer attempt's lease on the same job, taken here
        after this one lapsed)."""
        with self._lock:
            if self._held.get(lease.key) == lease.token:
                del self._held[lease.key]

    def held(self, job_id: str) -> bool:
        """Whether any attempt, in any process, holds ``job_id``'s lease now."""
        return bool(self.redis.exists(lease_key(job_id)))

    def _heartbeat(self) -> None:
        while True:
            time.sleep(self.ttl_ms / 3000)
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            pipe = self.redis.pipeline(transaction=False)
            for key, token in held:
                self._extend(keys=[key], args=[token, self.ttl_ms], client=pipe)
            # Redis away for a moment: the next beat tries again before the leases lapse.
            with contextlib.suppress(RedisError):
                pipe.execute()
