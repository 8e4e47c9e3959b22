"""What an admin reads: any user's jobs, one job's event log, and the audit log.

Jobs are read as ``jobcast.jobs.service.list_owned`` reads one owner's (newest first, the same
opaque cursor), without its owner condition; nothing here writes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, and_, or_, select

from jobcast.db.database import db as jobs_db
from jobcast.db.tables import Job
from jobcast.errors import NotFound
from jobcast.jobs.cursor import decode_cursor, encode_cursor
from jobcast.runtime import current_runtime
from jobcast.service.admin.models import AuditEntry
from jobcast.service.admin.schemas import AuditFilters, JobFilters
from jobcast.service.auth.models import MAX_ID, User
from jobcast.service.auth.users import find_by_email
from jobcast.service.extensions import db


def job(job_id: str) -> Job:
    """Any user's job, or NotFound (an id that is not a UUID included)."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no job {job_id!r}") from None
    found = jobs_db.session.get(Job, job_id)
    if found is None:
        raise NotFound(f"no job {job_id!r}")
    return found


def list_jobs(filters: JobFilters) -> tuple[list[Job], str | None]:
    """A page of every user's jobs that pass the filters, newest first, ties broken by id; an
    owner_email no account has matches nothing. Times bound ``created_at`` exclusively."""
    query = select(Job)
    if filters.owner_email is not None:
        user = find_by_email(filters.owner_email)
        if user is None:
            return [], None
        query = query.where(Job.owner_id == str(user.id))
    conditions = {
        Job.type: filters.type,
        Job.status: filters.status,
        Job.owner_id: filters.owner,
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if filters.created_after is not None:
        query = query.where(Job.created_at > filters.created_after)
    if filters.created_before is not None:
        query = query.where(Job.created_at < filters.created_before)
    return _page(query, filters.limit, filters.cursor)


def _page(query: Select[Job], limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
    if cursor is not None:
        created_at, job_id = decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    ordered = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = list(jobs_db.session.scalars(ordered))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


#: An owner string that can be a user id: decimal digits within the id column's range.
_USER_ID = re.compile(r"^[1-9][0-9]{0,9}$")


def owner_emails(jobs: Iterable[Job]) -> dict[str, str]:
    """The email of each job's owner, by owner id; an owner no account matches is left out."""
    ids = {int(j.owner_id) for j in jobs if _USER_ID.match(j.owner_id)}
    ids = {user_id for user_id in ids if user_id <= MAX_ID}
    if not ids:
        return {}
    found = db.session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {str(user_id): email for user_id, email in found}


def event_log(job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every recorded event of the job, oldest first (empty once the log has expired)."""
    return current_runtime().events.history(job_id)


def audit_entries(filters: AuditFilters) -> tuple[list[AuditEntry], str | None]:
    """A page of the audit log, newest first; the cursor is the last entry's id."""
    query = select(AuditEntry)
    conditions = {
        AuditEntry.action: filters.action,
        AuditEntry.actor_id: filters.actor,
        AuditEntry.target_type: filters.target_type,
        AuditEntry.target_id: filters.target_id,
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if filters.cursor is not None:
        query = query.where(AuditEntry.id < int(filters.cursor))
    limit = filters.limit
    entries = list(db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    next_cursor = str(entries[limit - 1].id) if len(entries) > limit else None
    return entries[:limit], next_cursor
