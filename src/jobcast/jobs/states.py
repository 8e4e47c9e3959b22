"""Job states, their groups, and the one table of allowed transitions (after celery/states.py)."""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

ALL = frozenset({QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED, CANCELLED})
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE = frozenset({QUEUED, RUNNING, RETRYING})

# RUNNING -> RUNNING is a redelivery: a worker died mid-job and another one starts it again.
_TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({RUNNING, RETRYING, SUCCEEDED, FAILED, CANCELLED}),
    RETRYING: frozenset({RUNNING, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

#: The Socket.IO event announcing that a job entered a state.
EVENT_FOR_STATE = {
    QUEUED: "job.queued",
    RUNNING: "job.started",
    RETRYING: "job.retrying",
    SUCCEEDED: "job.succeeded",
    FAILED: "job.failed",
    CANCELLED: "job.cancelled",
}


class InvalidTransition(Exception):
    """A state change the table does not allow, e.g. a finished job starting again."""


def can_transition(current: str, new: str) -> bool:
    return new in _TRANSITIONS.get(current, frozenset())


def sources_of(new: str) -> frozenset[str]:
    """Every state that may become ``new``: the guard of a conditional UPDATE."""
    return frozenset(s for s, targets in _TRANSITIONS.items() if new in targets)


def check_transition(current: str, new: str) -> None:
    if not can_transition(current, new):
        raise InvalidTransition(f"a {current} job cannot become {new}")
