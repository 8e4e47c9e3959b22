"""Download links: signed, bound to one job and one owner, and short-lived."""

from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from jobcast.jobs.results import DownloadSigner

SECRET = "download-test-secret-0123456789abcdef"
OWNER = "42"


@pytest.fixture
def signer() -> DownloadSigner:
    return DownloadSigner(SECRET, max_age_seconds=900, prefix="/api/v1")


@pytest.fixture
def job_id() -> str:
    return str(uuid.uuid4())


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def _issued_seconds_ago(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    """Make tokens signed from now on carry a timestamp ``seconds`` in the past."""
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - seconds)


def test_url_points_at_the_jobs_result_with_a_token(signer: DownloadSigner, job_id: str) -> None:
    url = signer.url(job_id, OWNER)
    assert urlsplit(url).path == f"/api/v1/jobs/{job_id}/result"
    assert _token(url)


def test_public_url_prefixes_the_link_without_a_double_slash(job_id: str) -> None:
    signer = DownloadSigner(
        SECRET, max_age_seconds=60, public_url="https://jobs.example.com/", prefix="/api/v1"
    )
    assert signer.url(job_id, OWNER).startswith(f"https://jobs.example.com/api/v1/jobs/{job_id}/")


def test_a_fresh_token_names_its_owner(signer: DownloadSigner, job_id: str) -> None:
    assert signer.owner(_token(signer.url(job_id, OWNER)), job_id) == OWNER


def test_a_token_just_inside_its_lifetime_is_valid(
    signer: DownloadSigner, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        _issued_seconds_ago(m, 890)
        token = _token(signer.url(job_id, OWNER))
    assert signer.owner(token, job_id) == OWNER


def test_an_expired_token_is_refused(
    signer: DownloadSigner, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        _issued_seconds_ago(m, 901)
        token = _token(signer.url(job_id, OWNER))
    assert signer.owner(token, job_id) is None


def test_max_age_zero_refuses_a_token_a_second_old(
    job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = DownloadSigner(SECRET, max_age_seconds=0)
    with monkeypatch.context() as m:
        _issued_seconds_ago(m, 1)
        token = _token(signer.url(job_id, OWNER))
    assert signer.owner(token, job_id) is None


def test_a_token_for_another_job_is_refused(signer: DownloadSigner, job_id: str) -> None:
    token = _token(signer.url(job_id, OWNER))
    assert signer.owner(token, str(uuid.uuid4())) is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_token_whose_owner_was_rewritten_is_refused(signer: DownloadSigner, job_id: str) -> None:
    _, timestamp, signature = _token(signer.url(job_id, OWNER)).split(".")
    rewritten = _b64(json.dumps({"j": job_id, "o": 1}, separators=(",", ":")).encode())
    assert signer.owner(f"{rewritten}.{timestamp}.{signature}", job_id) is None


def test_a_token_whose_timestamp_was_moved_forward_is_refused(
    signer: DownloadSigner, job_id: str
) -> None:
    payload, _, signature = _token(signer.url(job_id, OWNER)).split(".")
    later = _b64((int(time.time()) + 86_400).to_bytes(4, "big"))
    assert signer.owner(f"{payload}.{later}.{signature}", job_id) is None


@pytest.mark.parametrize("position", [0, 5, 13])
def test_a_token_with_a_changed_signature_is_refused(
    signer: DownloadSigner, job_id: str, position: int
) -> None:
    payload, timestamp, signature = _token(signer.url(job_id, OWNER)).split(".")
    swapped = "A" if signature[position] != "A" else "B"
    signature = signature[:position] + swapped + signature[position + 1 :]
    assert signer.owner(f"{payload}.{timestamp}.{signature}", job_id) is None


def test_a_token_with_a_forged_owner_is_refused(signer: DownloadSigner, job_id: str) -> None:
    # Same job, owner swapped, signed with a key the attacker guessed.
    forged = URLSafeTimedSerializer("guessed", salt="jobcast.download").dumps({"j": job_id, "o": 1})
    assert signer.owner(forged, job_id) is None


def test_a_token_from_another_secret_is_refused(job_id: str) -> None:
    other = DownloadSigner("another-secret-entirely-0123456789", max_age_seconds=900)
    token = _token(other.url(job_id, OWNER))
    assert DownloadSigner(SECRET, max_age_seconds=900).owner(token, job_id) is None


def test_a_token_signed_for_another_purpose_is_refused(signer: DownloadSigner, job_id: str) -> None:
    # Same secret, other salt: e.g. a value Flask signed for something else.
    other_use = URLSafeTimedSerializer(SECRET, salt="other.purpose").dumps({"j": job_id, "o": 1})
    assert signer.owner(other_use, job_id) is None


@pytest.mark.parametrize("payload", [["not", "a", "dict"], {"j": "x"}, {"o": OWNER}])
def test_a_validly_signed_but_malformed_payload_is_refused(
    signer: DownloadSigner, job_id: str, payload: object
) -> None:
    token = URLSafeTimedSerializer(SECRET, salt="jobcast.download").dumps(payload)
    assert signer.owner(token, job_id) is None


def test_an_owner_that_is_not_a_string_is_refused(signer: DownloadSigner, job_id: str) -> None:
    # Owners are strings; a number (a link from before owners were strings) names nobody.
    token = URLSafeTimedSerializer(SECRET, salt="jobcast.download").dumps(
        {"j": job_id, "o": int(OWNER)}
    )
    assert signer.owner(token, job_id) is None


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "😀"])
def test_garbage_is_refused_not_raised(signer: DownloadSigner, job_id: str, garbage: str) -> None:
    assert signer.owner(garbage, job_id) is None
