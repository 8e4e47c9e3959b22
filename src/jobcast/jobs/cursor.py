"""List cursors: a job's place in the newest-first order, opaque to the client.

A cursor is the last row's ``created_at`` and ``id`` (the order's tie-break), so the next page
starts after that row however many jobs arrive meanwhile. Anything that is not a cursor this
API returned is a 422, never a 500: a time whose offset moves it off the calendar once it is
turned into UTC (year 1 east of Greenwich, year 9999 west of it) included, since the column
compares in UTC.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime

from jobcast.db.tables import Job
from jobcast.errors import ValidationFailed


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        job_id = str(uuid.UUID(job_id))
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        created_at = created_at.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "invalid cursor",
            errors=[
                {
                    "field": "cursor",
                    "message": "not a cursor this API returned",
                    "type": "value_error",
                }
            ],
        ) from None
    return created_at, job_id
