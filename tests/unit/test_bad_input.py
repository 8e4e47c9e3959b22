"""Hostile input meets the one place that judges it, and is refused there, never with a crash.

Each of these was a 500 once (issue 17): a body nested deeper than the JSON parser recurses, an
email with a NUL or a lone surrogate, a list cursor whose time leaves the calendar in UTC, a
token whose ``sub`` is no user id. The strategies (``tests/fuzz/strategies.py``) are shared
with ``tests/integration/test_bad_input.py``, which sends them to every endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from werkzeug.exceptions import BadRequest

from jobcast.api.http import ApiRequest, json_body
from jobcast.errors import ApiError, ValidationFailed
from jobcast.jobs.cursor import decode_cursor
from jobcast.service.auth.models import MAX_ID
from jobcast.service.auth.tokens import user_id_of
from jobcast.service.auth.views import Credentials, LoginForm
from tests.fuzz.strategies import DEEP_JSON, ODD_TEXT, UNPRINTABLE, nested

PROPERTIES = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- bodies -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_app() -> Flask:
    app = Flask(__name__)
    app.request_class = ApiRequest
    return app


@pytest.mark.parametrize("depth", [1_100, 50_000])
def test_get_json_refuses_a_document_nested_too_deeply(bare_app: Flask, depth: int) -> None:
    with bare_app.test_request_context(
        method="POST", data=nested(depth), content_type="application/json"
    ):
        assert request.get_json(silent=True) is None
        with pytest.raises(BadRequest):
            request.get_json()


@PROPERTIES
@given(raw=DEEP_JSON)
def test_json_body_parses_or_refuses_with_a_400(bare_app: Flask, raw: str) -> None:
    """Any depth at all: the document, or a BadRequest; never a RecursionError."""
    with bare_app.test_request_context(
        method="POST", data=raw, headers={"Content-Type": "application/json"}
    ):
        try:
            json_body()
        except ApiError as exc:
            assert exc.status == 400


# --- emails -----------------------------------------------------------------------------------


@PROPERTIES
@given(email=ODD_TEXT.filter(lambda s: UNPRINTABLE.search(s) is not None))
def test_an_email_with_an_unprintable_character_is_refused_at_sign_up_naming_it(
    email: str,
) -> None:
    with pytest.raises(ValidationError) as refused:
        Credentials.model_validate({"email": email, "password": "correct horse battery"})
    assert {error["loc"] for error in refused.value.errors()} == {("email",)}


@pytest.mark.parametrize("model", [Credentials, LoginForm])
@PROPERTIES
@given(email=ODD_TEXT, password=ODD_TEXT)
def test_an_accepted_email_and_password_encode_as_utf8(
    model: type[Credentials | LoginForm], email: str, password: str
) -> None:
    """What validates can reach the database, the hasher and a Redis key: it encodes, and a
    sign-up's email holds nothing unprintable (login answers one as an unknown address)."""
    try:
        form = model.model_validate({"email": email, "password": password})
    except ValidationError:
        return
    form.email.encode()
    form.password.encode()
    if model is Credentials:
        assert not UNPRINTABLE.search(form.email)


def test_an_ordinary_email_still_validates() -> None:
    assert Credentials(email="Someone@Example.com", password="12345678").email
    assert LoginForm(email="someone@example.com", password="x").email == "someone@example.com"


# --- cursors ----------------------------------------------------------------------------------


def _cursor(created: str, job_id: str | None = None) -> str:
    raw = f"{created}|{job_id or uuid.uuid4()}".encode(errors="surrogatepass")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23))


@PROPERTIES
@given(when=st.datetimes(), offset=OFFSETS)
def test_a_cursor_with_any_time_and_offset_decodes_to_utc_or_is_refused(
    when: datetime, offset: timedelta
) -> None:
    """Year 1 to 9999, any offset: an aware UTC time the database can compare, or a 422 on the
    cursor; never an OverflowError."""
    created = when.replace(tzinfo=timezone(offset)).isoformat()
    try:
        created_at, _ = decode_cursor(_cursor(created))
    except ValidationFailed as exc:
        assert [e["field"] for e in exc.errors or []] == ["cursor"]
        return
    assert created_at.tzinfo is UTC


@PROPERTIES
@given(text=ODD_TEXT)
def test_any_cursor_text_decodes_or_is_refused(text: str) -> None:
    for cursor in (text, _cursor(text), _cursor("2024-01-01T00:00:00+00:00", text)):
        with contextlib.suppress(ValidationFailed):
            decode_cursor(cursor)


def test_a_cursor_id_is_given_back_in_its_canonical_form() -> None:
    job_id = uuid.uuid4()
    _, decoded = decode_cursor(_cursor("2024-01-01T00:00:00+00:00", "{" + job_id.hex + "}"))
    assert decoded == str(job_id)


# --- token subjects ---------------------------------------------------------------------------

SUBJECTS: st.SearchStrategy[Any] = st.one_of(
    ODD_TEXT,
    st.integers().map(str),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@PROPERTIES
@given(sub=SUBJECTS)
def test_a_subject_names_a_user_only_as_the_digits_of_an_id_in_the_columns_range(sub: Any) -> None:
    user_id = user_id_of({"sub": sub})
    if user_id is None:
        return
    assert isinstance(sub, str) and sub == str(user_id)
    assert 1 <= user_id <= MAX_ID


@pytest.mark.parametrize("user_id", [1, 42, MAX_ID])
def test_the_subject_this_server_writes_names_its_user(user_id: int) -> None:
    assert user_id_of({"sub": str(user_id)}) == user_id


def test_a_subject_past_the_id_columns_range_names_no_user() -> None:
    assert user_id_of({"sub": str(MAX_ID + 1)}) is None


def test_a_claims_set_without_a_subject_names_no_user() -> None:
    assert user_id_of({}) is None
