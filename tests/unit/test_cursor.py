"""List cursors: opaque, round-trip exactly, and a 422 (never a 500) for anything else."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from jobcast.errors import ValidationFailed
from jobcast.jobs.cursor import decode_cursor, encode_cursor


def _job(created_at: datetime, job_id: str | None = None) -> Any:
    return SimpleNamespace(created_at=created_at, id=job_id or str(uuid.uuid4()))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_cursor_round_trips_time_to_the_microsecond_and_the_id() -> None:
    job = _job(datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC))
    assert decode_cursor(encode_cursor(job)) == (job.created_at, job.id)


def test_decoded_time_is_aware_utc() -> None:
    created_at, _ = decode_cursor(encode_cursor(_job(datetime(2024, 1, 1, tzinfo=UTC))))
    assert created_at.utcoffset() is not None
    assert created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_cursor_is_url_safe_without_padding() -> None:
    for micro in range(0, 1_000_000, 99_991):  # vary the length to hit every padding case
        cursor = encode_cursor(_job(datetime(2024, 1, 1, 0, 0, 0, micro, tzinfo=UTC)))
        assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def test_different_jobs_get_different_cursors() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert encode_cursor(_job(when)) != encode_cursor(_job(when))


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("%%%not-base64%%%", id="not-base64"),
        pytest.param("a", id="truncated-base64"),
        pytest.param(_b64(b"2024-01-01T00:00:00+00:00"), id="no-separator"),
        pytest.param(_b64(b"2024-01-01T00:00:00+00:00|not-a-uuid"), id="bad-uuid"),
        pytest.param(_b64(f"yesterday|{uuid.uuid4()}".encode()), id="bad-time"),
        pytest.param(_b64(f"2024-01-01T00:00:00|{uuid.uuid4()}".encode()), id="naive-time"),
        pytest.param(_b64(b"\xff\xfe\xfd|\x80"), id="not-utf8"),
    ],
)
def test_bad_cursor_is_a_validation_error_on_the_cursor_field(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor)
    assert caught.value.status == 422
    assert [e["field"] for e in caught.value.errors or []] == ["cursor"]
