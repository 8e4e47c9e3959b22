"""Leases on running jobs: proof, in Redis, that one attempt is alive right now.

Two deliveries of one job can meet: the sweeper re-dispatches a job whose first message was
slow, or the broker restores a message whose worker died. A lease is taken with SET NX, so
only one attempt runs; a heartbeat keeps it while the attempt lives, and it lapses within
``ttl`` seconds of a crash, after which a later delivery may run the job again.

One heartbeat serves every lease of the process, extending them all in one pipelined round
trip: a thread per attempt cost a start and a join per job, most of a no-op job's lease cost.

The lease decides who owns a running job. A heartbeat that finds its key gone (Redis lost its
data, or the process froze past the lifetime) takes it back if nobody else has; one that finds
another holder's token marks the lease ``lost``: the recovery sweep (which seizes a lapsed
lease before it re-dispatches or fails the job) or a new attempt owns the job now, and the old
attempt must stop writing it.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

# Extend or release only our own lease (the holder may have lost it to a lapse and a new attempt);
# a key that is gone altogether is taken back: nobody else owns the job.
_EXTEND = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
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

    @property
    def lost(self) -> bool:
        """Whether another holder took this lease: the attempt no longer owns its job."""
        return self.keeper.lost(self)

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
        self._lost: set[str] = set()
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

    def seize(self, job_id: str) -> Lease | None:
        """Take ``job_id``'s lapsed lease for a moment, without a heartbeat: the recovery sweep
        holds it while it changes the job, so a heartbeat of the lost attempt cannot take it
        back meanwhile. None if someone holds it."""
        lease = Lease(self, lease_key(job_id), uuid.uuid4().hex)
        if not self.redis.set(lease.key, lease.token, nx=True, px=self.ttl_ms):
            return None
        return lease

    def release(self, lease: Lease) -> None:
        self.forget(lease)
        self._release(keys=[lease.key], args=[lease.token])

    def forget(self, lease: Lease) -> None:
        """Stop extending ``lease`` (not a newer attempt's lease on the same job, taken here
        after this one lapsed)."""
        with self._lock:
            self._lost.discard(lease.token)
            if self._held.get(lease.key) == lease.token:
                del self._held[lease.key]

    def lost(self, lease: Lease) -> bool:
        with self._lock:
            return lease.token in self._lost

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
            try:
                kept = pipe.execute()
            except RedisError:
                continue  # Redis away for a moment: the next beat tries again
            with self._lock:
                for (key, token), ok in zip(held, kept, strict=True):
                    if not ok and self._held.get(key) == token:
                        del self._held[key]
                        self._lost.add(token)
