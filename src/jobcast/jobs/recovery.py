"""Sweeps that find lost work and send it again: the row is the truth, whatever the broker holds.

Celery beat runs them. ``recover_lost`` decides by the job's lease, within
``JOBCAST_JOB_LEASE_SECONDS`` + ``JOBCAST_RECOVERY_SWEEP_SECONDS``, instead of waiting hours for
the broker's visibility timeout: a running job whose worker died is run again or failed with
``worker_lost``; a retry or a queued job whose message was lost is sent again.
``redispatch_stuck`` sends the queued jobs whose dispatch never completed. Every change is
conditional on the row as read, so two sweepers move a job once.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from kombu.exceptions import OperationalError as BrokerError
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.db.types import utcnow
from jobcast.jobs import lifecycle, notify, service, states, store
from jobcast.jobs.registry import JobType
from jobcast.runtime import current_runtime

log = logging.getLogger(__name__)

#: The error type of a job whose attempt was lost with its worker (its lease lapsed).
WORKER_LOST = "worker_lost"


def stale_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def undispatched_before(cutoff: datetime, limit: int = 500) -> list[Job]:
    """Queued jobs committed before ``cutoff`` whose dispatch never completed."""
    return list(
        db.session.scalars(
            select(Job)
            .where(
                Job.status == states.QUEUED, Job.dispatched_at.is_(None), Job.created_at < cutoff
            )
            .order_by(Job.created_at)
            .limit(limit)
        )
    )


def lapsed_attempts(cutoff: datetime, limit: int = 500) -> list[Job]:
    """Running jobs whose row has not changed since ``cutoff``: candidates for a lost attempt
    (the caller checks their lease). A just-started attempt is never one: it took its lease
    before its row said running, and its start refreshed ``updated_at``."""
    return list(
        db.session.scalars(
            select(Job)
            .where(Job.status == states.RUNNING, Job.updated_at < cutoff)
            .order_by(Job.updated_at)
            .limit(limit)
        )
    )


def take_from_lost_attempt(job: Job, job_type: JobType | None) -> str | None:
    """Move a running job whose attempt holds no lease to ``retrying`` (a new attempt will be
    sent) or, past its retry budget or for a type that must not run twice, to ``failed``
    with ``worker_lost``; returns the new status, or None when it was not lost after all.

    The sweep seizes the lapsed lease while it decides, so the lost attempt, should it wake,
    cannot take the lease back (it finds it taken and stops); and the change is a conditional
    UPDATE on the status and attempt count, so two sweepers, or a redelivery that started a
    new attempt meanwhile, never both win.
    """
    rt = current_runtime()
    lease = rt.leases.seize(job.id)
    if lease is None:
        return None  # alive, or a new attempt is starting
    try:
        rerun = (
            job_type is not None and job_type.retry_lost and job.attempts <= job_type.max_retries
        )
        now = utcnow()
        if rerun:
            error = {
                "type": WORKER_LOST,
                "message": f"the worker running attempt {job.attempts} was lost; running it again",
            }
            values: dict[str, Any] = {"status": states.RETRYING, "error": error}
        else:
            if job_type is None:
                why = f"no job type {job.type!r} is registered here"
            elif not job_type.retry_lost:
                why = "it must not run twice"
            else:
                why = "its retries are used up"
            error = {
                "type": WORKER_LOST,
                "message": f"the worker running attempt {job.attempts} was lost, and {why}",
            }
            values = {
                "status": states.FAILED,
                "error": error,
                "message": error["message"],
                "finished_at": now,
            }
        values["updated_at"] = now
        moved = store.move_lost_attempt(job, values)
    except BaseException:
        store.settle(job)
        lease.release()
        raise
    lease.release()
    if not moved:
        return None
    found = lifecycle.counted(job)
    if rerun:
        notify.announce_outcome(
            job, "job.retrying", error=error, attempt=job.attempts, retry_at=notify.iso(now)
        )
        if found:
            found.retried.inc()
    else:
        notify.announce_outcome(job, "job.failed", error=error)
        if found:
            found.failed.inc()
    return job.status


def overdue_retries(now: datetime, grace: float, limit: int = 500) -> list[Job]:
    """Retrying jobs still not started ``grace`` seconds after their retry was due: its
    message was lost (Redis lost its data, or the worker holding it until its time died), or
    the recovery sweep could not send it. A lost attempt's retry is due at once."""
    rt = current_runtime()
    overdue = []
    for job in db.session.scalars(
        select(Job)
        .where(
            Job.status == states.RETRYING,
            Job.updated_at < now - timedelta(seconds=grace),
        )
        .order_by(Job.updated_at)
        .limit(limit)
    ):
        job_type = rt.registry.get(job.type)
        delay = 0.0
        if job_type is not None and (job.error or {}).get("type") != WORKER_LOST:
            delay = job_type.retry_delay(job.attempts)
        if job.updated_at + timedelta(seconds=delay + grace) < now:
            overdue.append(job)
    return overdue


def redispatch_stuck(older_than_seconds: float) -> int:
    """Send again every queued job whose dispatch never completed; returns how many."""
    rt = current_runtime()
    sent = 0
    for job in undispatched_before(stale_cutoff(older_than_seconds)):
        if rt.atomic_dispatch and rt.events.numbered(job.id):
            # Its job.queued was numbered by the script that pushed its message: it was sent.
            store.mark_dispatched(job, job.created_at)
            continue
        job_type = rt.registry.get(job.type)
        if job_type is None:
            continue
        log.warning("job %s was never dispatched; dispatching it now", job.id)
        service.dispatch(job, job_type)
        sent += 1
    return sent


def recover_lost() -> int:
    """The recovery sweep (beat, every ``JOBCAST_RECOVERY_SWEEP_SECONDS``); the row is the
    truth, whatever the broker still holds. Returns how many jobs it moved.

    1. A running job whose lease lapsed (its worker died, froze or lost Redis) and whose row
       has not changed for a lease's lifetime runs again as a new attempt (``job.retrying``
       with ``worker_lost``), or fails with ``worker_lost`` past its retries or when its type
       must not run twice: within ``JOBCAST_JOB_LEASE_SECONDS`` + the sweep interval.
    2. A retry still not started ``JOBCAST_QUEUED_REDISPATCH_SECONDS`` after it was due is
       sent again (its message was lost, or its worker died holding it until its time).
    3. A queued job dispatched more than that long ago whose message is provably gone (in no
       queue, and not held by a worker that is starting it) is sent again.

    Every change is conditional on the row as read, so two sweepers send a job once; a
    duplicate message is harmless anyway (the lease and the conditional start let one attempt
    run, and a delivery of a finished job is dropped).
    """
    rt = current_runtime()
    settings = rt.settings
    moved = 0
    for job in lapsed_attempts(stale_cutoff(settings.job_lease_seconds)):
        if rt.leases.held(job.id):
            continue
        job_type = rt.registry.get(job.type)
        status = take_from_lost_attempt(job, job_type)
        if status is None:
            continue
        moved += 1
        log.warning("job %s attempt %d lost its worker; now %s", job.id, job.attempts, status)
        if status == states.RETRYING and job_type is not None:
            _send_again(job, job_type)
    grace = settings.queued_redispatch_seconds
    for job in overdue_retries(utcnow(), grace):
        job_type = rt.registry.get(job.type)
        if job_type is None or rt.leases.held(job.id) or not store.claim_overdue_retry(job):
            continue
        log.warning("job %s: its retry was not delivered; sending it again", job.id)
        moved += _send_again(job, job_type)
    return moved + _resend_lost_messages(grace)


def _send_again(job: Job, job_type: JobType) -> int:
    """Send a job's message; a broker that is away is logged, and the next sweep tries again
    (the job is overdue then)."""
    try:
        service.send_message(job, job_type)
    except (BrokerError, RedisError, OSError) as exc:
        log.warning("job %s not sent (%s); the next sweep tries again", job.id, exc)
        return 0
    return 1


def _resend_lost_messages(older_than_seconds: float, limit: int = 500) -> int:
    """Send again the queued jobs, dispatched before the cutoff, whose message is gone."""
    rt = current_runtime()
    cutoff = stale_cutoff(older_than_seconds)
    waiting = list(
        db.session.scalars(
            select(Job)
            .where(Job.status == states.QUEUED, Job.dispatched_at < cutoff)
            .order_by(Job.dispatched_at)
            .limit(limit)
        )
    )
    if not waiting:
        return 0
    present = _broker_messages(older_than_seconds)
    if present is None:
        return 0
    sent = 0
    for job in waiting:
        job_type = rt.registry.get(job.type)
        if job.id in present or job_type is None or rt.leases.held(job.id):
            continue
        if not store.claim_lost_message(job):
            continue
        log.warning("job %s: its broker message is gone; sending it again", job.id)
        sent += _send_again(job, job_type)
    return sent


#: The most messages the sweep reads to prove one is missing; with a longer backlog it proves
#: nothing (and sends nothing) until the backlog is shorter.
SCAN_LIMIT = 5000


# kombu's Redis transport keeps a queue's messages of priority n > 0 in "<queue>\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", *(f"\x06\x16{n}" for n in (3, 6, 9)))


def _broker_messages(fresh_seconds: float) -> set[str] | None:
    """Task ids (= job ids) of the messages the broker holds: waiting in a queue, or delivered
    less than ``fresh_seconds`` ago (a worker that reserved one starts it at once; one held
    longer by a queued job's worker belongs to a worker that died). None when this cannot be
    known: a broker other than Redis, or more messages than ``SCAN_LIMIT``."""
    rt = current_runtime()
    broker_url = str(rt.celery.conf.broker_url or "")
    if urlsplit(broker_url).scheme not in ("redis", "rediss"):
        return None
    if rt.atomic_dispatch:
        return _messages_in(rt.redis, fresh_seconds)
    with Redis.from_url(broker_url, decode_responses=True) as client:
        return _messages_in(client, fresh_seconds)


def _messages_in(client: Redis, fresh_seconds: float) -> set[str] | None:
    queues = current_runtime().queues.values()
    keys = [q + suffix for q in queues for suffix in _PRIORITY_SUFFIXES]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    pipe.zrangebyscore("unacked_index", time.time() - fresh_seconds, "+inf")
    *lengths, tags = pipe.execute()
    if sum(lengths) + len(tags) > SCAN_LIMIT:
        log.info("the broker holds over %d messages: lost ones are looked for later", SCAN_LIMIT)
        return None
    pipe = client.pipeline(transaction=False)
    for key, length in zip(keys, lengths, strict=True):
        if length:
            pipe.lrange(key, 0, -1)
    if tags:
        pipe.hmget("unacked", tags)
    raw: list[str] = []
    for found in pipe.execute():
        raw.extend(m for m in found if m)
    ids = set()
    for message in raw:
        try:
            decoded = json.loads(message)
            if isinstance(decoded, list):  # unacked: [message, exchange, routing key]
                decoded = decoded[0]
            ids.add(str(decoded["headers"]["id"]))
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return ids
