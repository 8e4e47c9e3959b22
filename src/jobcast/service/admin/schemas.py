"""The admin API's query strings and documents, as pydantic models (the OpenAPI document is
built from them, as from ``jobcast.api.schemas``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from jobcast.api.schemas import Job, JobEvent, JobEventName
from jobcast.jobs import states
from jobcast.jobs.service import MAX_PAGE
from jobcast.service.auth.models import MAX_ID

#: An owner as the service writes it: a user id's decimal digits (at most ten: ``MAX_ID``).
USER_ID = r"^[1-9][0-9]{0,9}$"
_VISIBLE = r"^[!-~]{1,%d}$"


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobFilters(_Query):
    type: str | None = Field(None, pattern=_VISIBLE % 100, description="The job type, exactly.")
    status: str | None = Field(None, pattern="^(" + "|".join(sorted(states.ALL)) + ")$")
    owner: str | None = Field(None, pattern=USER_ID, description="The owner's user id.")
    owner_email: str | None = Field(
        None,
        max_length=320,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The owner's email (any case); one no account has matches no job.",
    )
    created_after: AwareDatetime | None = Field(
        None, description="Only jobs created after this time (RFC 3339, with its offset)."
    )
    created_before: AwareDatetime | None = Field(
        None, description="Only jobs created before this time (RFC 3339, with its offset)."
    )
    limit: int = Field(20, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, max_length=200)

    @field_validator("created_after", "created_before")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """The column compares in UTC: a time the shift to UTC moves off the calendar (year 1
        east of Greenwich, 9999 west of it) is refused here, not by a 500 later."""
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None


class AuditFilters(_Query):
    action: str | None = Field(None, pattern=r"^[a-z_.]{1,64}$", description="e.g. job.cancel.")
    actor: int | None = Field(None, ge=1, le=MAX_ID, description="The admin's user id.")
    target_type: str | None = Field(None, pattern=r"^[a-z_]{1,32}$", description="job or user.")
    target_id: str | None = Field(None, pattern=_VISIBLE % 255)
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, pattern=USER_ID, description="next_cursor of the last page.")

    @field_validator("cursor")
    @classmethod
    def _an_id(cls, value: str | None) -> str | None:
        """The cursor is an entry's id: past the column's range it names none (422, not a 500
        from PostgreSQL)."""
        if value is not None and int(value) > MAX_ID:
            raise ValueError("not a cursor this API issued")
        return value


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobOwner(_Document):
    id: str = Field(description="The owner as the job records it: the user's id.")
    email: str | None = Field(description="null when no account has that id any more.")


class AdminJob(Job):
    """A job as an admin sees it: the job object plus who owns it and how it travelled."""

    owner: JobOwner
    request_id: str | None = Field(description="X-Request-ID of the request that submitted it.")
    dispatched_at: datetime | None
    updated_at: datetime


class AdminJobPage(_Document):
    items: list[AdminJob]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null last.")


class LoggedEvent(_Document):
    event: JobEventName
    data: JobEvent


class AdminEventLog(_Document):
    """Every recorded event of a job, oldest first: what its Socket.IO and SSE clients got."""

    job_id: UUID
    items: list[LoggedEvent] = Field(description="Empty once the log expired, or not kept.")


class AuditRecord(_Document):
    """One admin action."""

    id: int
    at: datetime
    actor_id: int | None = Field(description="The admin's user id; null: the command line.")
    action: str = Field(
        description="job.cancel, job.rerun, user.create (an admin), user.promote, user.demote."
    )
    target_type: str = Field(description="job or user.")
    target_id: str
    detail: dict[str, Any] = Field(
        description="via (api or cli), request_id or os_user, outcome (pending, done, error)"
        " for a job action, and what the action changed."
    )


class AuditPage(_Document):
    items: list[AuditRecord]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null last.")
