"""Job types for ``bench overhead``, loaded with
``JOBCAST_JOB_MODULES=jobcast.service.builtin,bench.noop``.

``bench.noop`` is a jobcast job that does nothing (so its cost is jobcast's: the job row, the
state transitions, the events); ``bench.bare_noop`` is a plain Celery task on the same queue and
worker that only records that it ran, the reference.
"""

from __future__ import annotations

import time

from celery import shared_task
from redis import Redis

from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import QUEUES, EmptyParams, job
from jobcast.runtime import current_runtime

#: Redis keys the bare task writes: how many ran, when the first started, when the last ended.
BARE_KEYS = ("bench:bare:count", "bench:bare:first", "bench:bare:last")


@job("bench.noop", params=EmptyParams, title="Bench: does nothing", bound="io")
def noop(ctx: JobContext[EmptyParams]) -> None:
    """Nothing: the job's cost is jobcast's own."""


@shared_task(name="bench.bare_noop", queue=QUEUES["io"], ignore_result=True)
def bare_noop() -> None:
    """One pipelined round trip, so the benchmark can see when the batch started and ended."""
    redis: Redis = current_runtime().redis
    now = time.time()
    count, first, last = BARE_KEYS
    redis.pipeline(transaction=False).setnx(first, now).set(last, now).incr(count).execute()
