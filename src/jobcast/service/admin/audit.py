"""Writing the audit log: every admin action leaves an entry, never lost when it succeeded.

A change to the service's own tables (an admin role granted or taken back) commits its entry
in the same transaction (``add``). A job's cancel or re-run is written by jobcast's own session,
Redis and the broker, which share no transaction with this one: its entry is committed first
and finished after (``written_ahead``), so whatever happens in between, an action that took
effect has its entry.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from jobcast.errors import ApiError
from jobcast.service.admin.models import AuditEntry
from jobcast.service.extensions import db

log = logging.getLogger(__name__)

#: ``detail.outcome`` of an entry written ahead: the action has not finished (or its process
#: died before it could say), it finished, or it raised and may or may not have taken effect.
PENDING, DONE, ERROR = "pending", "done", "error"


@dataclass(frozen=True)
class Actor:
    """Who acts: an admin through the API, or whoever runs the ``jobcast`` command."""

    user_id: int | None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def admin(cls, user_id: int, request_id: str | None) -> Actor:
        return cls(user_id, {"via": "api", "request_id": request_id})

    @classmethod
    def command_line(cls) -> Actor:
        try:
            os_user: str | None = getpass.getuser()
        except (OSError, KeyError):  # no login name, and no passwd entry for the uid
            os_user = None
        return cls(None, {"via": "cli", "os_user": os_user})


def add(
    actor: Actor, action: str, target_type: str, target_id: object, detail: Mapping[str, Any]
) -> AuditEntry:
    """Put an entry in the session: the caller's commit writes it with the change it records."""
    entry = AuditEntry(
        actor_id=actor.user_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail={**actor.detail, **detail},
    )
    db.session.add(entry)
    return entry


@contextmanager
def written_ahead(
    actor: Actor, action: str, target_type: str, target_id: object, detail: Mapping[str, Any]
) -> Iterator[AuditEntry]:
    """Commit an entry before the action in the ``with`` block runs, then mark it done (with
    what the block added to ``entry.detail``). A refusal (an ``ApiError``: nothing was done)
    strikes the entry off; any other error leaves it with outcome ``error``."""
    entry = add(actor, action, target_type, target_id, {**detail, "outcome": PENDING})
    db.session.commit()
    try:
        yield entry
    except ApiError:
        _settle(entry, None)
        raise
    except Exception:
        _settle(entry, ERROR)
        raise
    _settle(entry, DONE)


def note(entry: AuditEntry, **detail: Any) -> None:
    """Add to an entry's detail (a new dict: the JSON column does not track changes in place)."""
    entry.detail = {**entry.detail, **detail}


def _settle(entry: AuditEntry, outcome: str | None) -> None:
    """Record the outcome, or (None) delete the entry. When the database fails here, the entry
    keeps saying ``pending``, and the caller's own answer or error goes out all the same."""
    try:
        if outcome is None:
            db.session.delete(entry)
        else:
            note(entry, outcome=outcome)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not settle audit entry %s (%s)", entry.id, entry.action)
