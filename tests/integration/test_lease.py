"""Job leases against a real Redis: one attempt at a time, kept alive by one shared heartbeat."""

from __future__ import annotations

import time
import uuid

from redis import Redis

from jobcast.jobs.lease import Leases, lease_key


def _redis(redis_url: str) -> Redis:
    return Redis.from_url(redis_url, decode_responses=True)


def test_a_second_attempt_waits_until_the_first_releases(redis_url: str) -> None:
    job_id = str(uuid.uuid4())
    here, elsewhere = Leases(_redis(redis_url), ttl=5), Leases(_redis(redis_url), ttl=5)
    first = here.acquire(job_id)
    assert first is not None
    assert elsewhere.acquire(job_id) is None
    assert elsewhere.held(job_id)
    first.release()
    assert not elsewhere.held(job_id)
    second = elsewhere.acquire(job_id)
    assert second is not None
    # A stale holder's release must not free the lease another attempt took since.
    first.release()
    assert here.held(job_id)
    second.release()


def test_the_heartbeat_keeps_every_held_lease_past_its_ttl(redis_url: str) -> None:
    redis = _redis(redis_url)
    leases = Leases(redis, ttl=1)
    held = [leases.acquire(str(uuid.uuid4())) for _ in range(3)]
    gone = leases.acquire(str(uuid.uuid4()))
    assert all(held) and gone is not None
    gone.release()
    time.sleep(2.5)  # two and a half lifetimes: alive only if extended meanwhile
    for lease in held:
        assert lease is not None
        assert redis.get(lease.key) == lease.token
        assert 0 < redis.pttl(lease.key) <= 1000
        lease.release()
    assert not redis.exists(gone.key)


def test_a_crashed_holders_lease_lapses(redis_url: str) -> None:
    redis = _redis(redis_url)
    job_id = str(uuid.uuid4())
    # A holder that died: its key is there, and no heartbeat extends it.
    redis.set(lease_key(job_id), "dead-attempt", px=800)
    leases = Leases(redis, ttl=5)
    assert leases.acquire(job_id) is None
    time.sleep(1.0)
    lease = leases.acquire(job_id)
    assert lease is not None
    lease.release()


def test_a_finished_jobs_lease_lapses_while_the_others_are_kept(redis_url: str) -> None:
    redis = _redis(redis_url)
    leases = Leases(redis, ttl=1)
    finished, running = leases.acquire(str(uuid.uuid4())), leases.acquire(str(uuid.uuid4()))
    assert finished is not None and running is not None
    finished.let_lapse()
    assert redis.get(finished.key) == finished.token  # no round trip: it is still there
    time.sleep(2.0)
    assert not redis.exists(finished.key)
    assert redis.get(running.key) == running.token
    running.release()


def test_a_lapsed_attempts_release_leaves_the_newer_attempts_heartbeat(redis_url: str) -> None:
    redis = _redis(redis_url)
    leases = Leases(redis, ttl=1)
    job_id = str(uuid.uuid4())
    stale = leases.acquire(job_id)
    assert stale is not None
    redis.delete(stale.key)  # as if it had lapsed while its attempt stalled
    newer = leases.acquire(job_id)
    assert newer is not None
    stale.release()
    time.sleep(2.0)  # two lifetimes: alive only if the heartbeat still extends it
    assert redis.get(newer.key) == newer.token
    newer.release()


def test_a_heartbeat_takes_back_a_lease_whose_key_vanished(redis_url: str) -> None:
    """Redis lost its data (or the holder froze past the lifetime) and nobody took the lease:
    the live attempt still owns its job."""
    redis = _redis(redis_url)
    leases = Leases(redis, ttl=1)
    lease = leases.acquire(str(uuid.uuid4()))
    assert lease is not None
    redis.delete(lease.key)
    time.sleep(1.0)
    assert redis.get(lease.key) == lease.token
    assert not lease.lost
    lease.release()


def test_a_lease_another_holder_took_is_lost_and_no_longer_extended(redis_url: str) -> None:
    """The recovery sweep seized the lapsed lease: the old attempt learns it does not own its
    job any more, and its heartbeat leaves the new holder's key alone."""
    redis = _redis(redis_url)
    leases, sweeper = Leases(redis, ttl=1), Leases(redis, ttl=5)
    job_id = str(uuid.uuid4())
    old = leases.acquire(job_id)
    assert old is not None
    redis.delete(old.key)  # lapsed while the attempt froze
    seized = sweeper.seize(job_id)
    assert seized is not None
    time.sleep(1.0)
    assert old.lost
    assert redis.get(seized.key) == seized.token
    assert sweeper.seize(job_id) is None
    old.release()  # a lost attempt's release frees nothing
    assert redis.get(seized.key) == seized.token
    seized.release()
    assert not redis.exists(seized.key)
