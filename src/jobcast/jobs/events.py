"""Job events: number them, append them to the durable log, push them live.

Every event of a job gets the next ``seq`` of that job, shared by the web process
(``job.queued``) and the worker (everything after), and is appended to the job's log, so a
client that missed events can ask for "everything after this one". Numbering belongs to an
epoch, which changes only when the job's numbering is lost (the store lost its data, or the log
expired) and starts again at 1 under a larger epoch. Clients order events by (epoch, seq), so a
renumbered event is never taken for one already seen (Centrifugo's stream epochs). Each event is
then published live, framed for the web processes' Socket.IO client manager by a
``realtime.wire`` (encoded once here).

``EventLog`` does what every store does (the payload, its framing, reading ``After``); a
subclass fills the hooks that move the bytes, as python-socketio's ``PubSubManager`` leaves
``_publish``/``_listen`` to its Redis and Kafka managers. ``jobs.redis_events`` is the one in
use. No Flask here: the worker publishes without an app or request context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson

from jobcast.realtime.wire import Frame, Wire


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


class Cancelled(Exception):
    """The job's cancellation flag was set: the event was not published."""


class EventLog:
    """Numbers, records and emits job events; one per process, shared by its threads.

    ``wire`` frames the live message for the web processes' Socket.IO client manager; events
    are kept ``retention_seconds`` after the job's last one, and not recorded at all (only
    numbered and pushed live) when ``durable`` is off. ``on_publish`` is told each published
    event's name (the app's metrics, ``telemetry.metrics``).
    """

    on_publish: Callable[[str], None] | None = None

    def __init__(self, *, wire: Wire, retention_seconds: int, durable: bool = True) -> None:
        self.wire = wire
        self.retention_seconds = retention_seconds
        self.durable = durable

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
        set (checked in the same step): a running job's progress checkpoint. With ``enqueue``
        (a broker list key and a message for it, see ``jobs.hold``), push the message in
        the same atomic step, then publish ``enqueue_events`` (pub/sub channel and message
        pairs: Celery's ``task-sent`` event about it).
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
        numbered = self._append(
            job_id, event, body, live, unless_cancelled, enqueue, enqueue_events
        )
        if numbered is None:
            raise Cancelled(job_id)
        if self.on_publish is not None:
            self.on_publish(event)
        seq, epoch = numbered
        return {"job_id": job_id, "seq": seq, "epoch": epoch, **payload}

    def history(
        self, job_id: str, after: int | After = 0, *, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Recorded events of ``job_id`` after ``after`` (a bare int: that seq of the current
        epoch), in (epoch, seq) order: a renumbering's events follow the older ones.

        With ``block_ms``, wait up to that long for the first one to be appended: Server-Sent
        Events follow a job this way without any pub/sub.
        """
        if not isinstance(after, After):
            after = After(after, None) if after > 0 else After()  # 0: the beginning
        if after.epoch is None:
            after = After(after.seq, self._current_epoch(job_id))
        events = []
        for epoch, seq, name, data in self._read(job_id, after, block_ms):
            payload = {"job_id": job_id, "seq": seq, "epoch": epoch}
            events.append((name, {**payload, **json.loads(data)}))
        return events

    # --- what a store fills in ---------------------------------------------------------------

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
        """Number, record (when durable) and publish one event in one atomic step; its (seq,
        epoch), or None when ``unless_cancelled`` and the job's cancellation flag is set."""
        raise NotImplementedError

    def _current_epoch(self, job_id: str) -> int:
        raise NotImplementedError

    def _read(
        self, job_id: str, after: After, block_ms: int | None
    ) -> list[tuple[int, int, str, str]]:
        """(epoch, seq, event, payload JSON) of the recorded events after ``after``."""
        raise NotImplementedError

    def numbered(self, job_id: str) -> bool:
        """Whether any event of ``job_id`` was numbered (within the retention)."""
        raise NotImplementedError

    def forget(self, job_id: str) -> None:
        """Drop the job's numbering, log and flags (a submission undone)."""
        raise NotImplementedError

    def request_cancel(self, job_id: str) -> None:
        """Flag a running job; it stops at its next checkpoint. Kept as long as the log."""
        raise NotImplementedError

    def cancel_requested(self, job_id: str) -> bool:
        raise NotImplementedError
