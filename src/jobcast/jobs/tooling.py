"""What Celery's own tools show for a job: Flower, ``celery inspect`` and ``events``, worker logs.

Every job runs as the one task ``jobcast.run``, so without help those tools would list every job
under that name with a bare id. Each message carries its job type as Celery's ``shadow`` name and
readable, bounded ``argsrepr``/``kwargsrepr``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from jobcast.db.tables import Job

# Params are the user's own input: they may hold anything (addresses, keys, text), and what
# Celery shows goes to worker logs, events and Flower. So only their names, never values.
_PARAM_NAMES_SHOWN = 20
_PARAM_NAME_CHARS = 40


def task_names(job: Job) -> dict[str, str]:
    """``apply_async`` options that show the job as its type, id, owner and params' names."""
    names = list(job.params or ())
    shown = ", ".join(repr(name[:_PARAM_NAME_CHARS]) for name in names[:_PARAM_NAMES_SHOWN])
    if len(names) > _PARAM_NAMES_SHOWN:
        shown += ", ..."
    return {
        "shadow": job.type,
        "argsrepr": f"['{job.id}']",
        "kwargsrepr": f"{{'owner_id': {job.owner_id}, 'params': [{shown}]}}",
    }


def name_sent_events_by_type(celery: Celery) -> None:
    """Name Celery's ``task-sent`` event of a job by its type, as every later event is.

    Celery names that one event by the task (``jobcast.run``), the rest by the ``shadow``, and
    Flower keeps the name of whichever event reached it last: a ``task-sent`` that races its
    worker's ``task-received`` (a retry's, or any where the broker is not the event log's
    Redis) would turn the job back into ``jobcast.run``. Only jobcast's own Celery app is
    wrapped.
    """
    amqp = celery.amqp
    create = amqp.create_task_message

    def create_task_message(*args: Any, **kwargs: Any) -> Any:
        message = create(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message

    amqp.create_task_message = create_task_message
