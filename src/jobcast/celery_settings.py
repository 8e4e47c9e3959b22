"""Celery settings derived from jobcast's: for a Celery app jobcast makes (the extension's, the
service's), and the beat schedule of jobcast's housekeeping tasks for any Celery app."""

from __future__ import annotations

from typing import Any

from kombu import Queue

from jobcast.config import Settings
from jobcast.jobs.registry import queue_names


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings: late acks, one prefetched task per slot, a visibility timeout longer
    than any job, and the beat schedule of jobcast's housekeeping tasks."""
    return {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            # How often a worker looks for messages whose worker died (unacked past the timeout).
            "unacked_restore_interval": settings.broker_restore_seconds,
            "unacked_restore_throttle": 1,
            # Late acks: hundreds of greenlets acknowledge at once; kombu's default pool of 10
            # connections would refuse some of them.
            "max_connections": settings.io_concurrency + 20,
        },
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_default_queue": queue_names(settings.queue_prefix)["io"],
        # Both queues by default: a plain `celery -A jobcast.service.worker worker` runs every job.
        "task_queues": [Queue(name) for name in queue_names(settings.queue_prefix).values()],
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "worker_prefetch_multiplier": 1,
        # Flower and `celery events` need them; `-E` is not needed.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """jobcast's housekeeping for Celery beat, each sent to jobcast's I/O queue."""
    queue = {"queue": queue_names(settings.queue_prefix)["io"]}
    return {
        "jobcast-expire-results": {
            "task": "jobcast.expire_results",
            "schedule": settings.result_sweep_seconds,
            "options": queue,
        },
        "jobcast-redispatch-stuck": {
            "task": "jobcast.redispatch_stuck",
            "schedule": settings.queued_redispatch_seconds,
            "options": queue,
        },
        "jobcast-recover-lost": {
            "task": "jobcast.recover_lost",
            "schedule": settings.recovery_sweep_seconds,
            # A sweep nobody ran in time is superseded by the next one: do not pile them up.
            "options": {**queue, "expires": settings.recovery_sweep_seconds},
        },
    }
