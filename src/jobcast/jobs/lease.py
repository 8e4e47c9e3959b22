"""A lease on a running job: proof, in Redis, that one attempt is alive right now.

Two deliveries of one job can meet: the sweeper re-dispatches a job whose first message was
slow, or the broker restores a message whose worker died. The lease is taken with SET NX, so
only one attempt runs; a heartbeat keeps it while the attempt lives, and it lapses within
``ttl`` seconds of a crash, after which a later delivery may run the job again.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

from redis import Redis
from redis.exceptions import RedisError

# Extend only our own lease (the holder may have lost it to a lapse and a new attempt).
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


class Lease:
    def __init__(self, redis: Redis, job_id: str, *, ttl: float) -> None:
        self.redis = redis
        self.key = f"jobcast:job:{job_id}:lease"
        self.token = uuid.uuid4().hex
        self.ttl_ms = int(ttl * 1000)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lease if nobody holds it, and start the heartbeat."""
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease:{self.key}", daemon=True)
        self._beat.start()
        return True

    def _heartbeat(self) -> None:
        extend = self.redis.register_script(_EXTEND)
        while not self._stop.wait(self.ttl_ms / 3000):
            # Redis away for a moment: the next beat tries again before the lease lapses.
            with contextlib.suppress(RedisError):
                extend(keys=[self.key], args=[self.token, self.ttl_ms])

    def held(self) -> bool:
        """Whether any attempt holds this job's lease now."""
        return bool(self.redis.exists(self.key))

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=1)
        self.redis.register_script(_RELEASE)(keys=[self.key], args=[self.token])
