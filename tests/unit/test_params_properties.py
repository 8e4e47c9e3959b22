"""Properties of job params validation, for every built-in job type's params model.

The schema a type publishes (GET /api/v1/job-types, the OpenAPI document) is a promise: what it
admits validates, what it rules out is refused, validation fails only with
``pydantic.ValidationError`` (which the API turns into a 422; anything else would be a 500), and
the validated params survive the trip through JSON that the job row makes.
"""

from __future__ import annotations

import contextlib
import functools
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from hypothesis_jsonschema import from_schema
from pydantic import ValidationError

import jobcast.service.builtin  # noqa: F401  (registers the built-in job types)
from jobcast.jobs.registry import JobType, registry
from tests.fuzz.strategies import ODD_TEXT, odd_json

JOB_TYPES = list(registry)
PROPERTIES = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Rules a JSON Schema cannot state (between members, or calendar bounds of a date-or-instant):
# (member, message) of the error.
_CALENDAR = "Value error, must fall between 1900-01-01 and 9998-12-31 (UTC)"
CROSS_FIELD_RULES = {
    ("created_to", "Value error, created_to must not be before created_from"),
    ("created_from", _CALENDAR),
    ("created_to", _CALENDAR),
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def by_name(job_type: JobType) -> str:
    return job_type.name


@functools.cache
def admitted(job_type: JobType) -> SearchStrategy[dict[str, Any]]:
    """Params the type's published JSON Schema admits."""
    return from_schema(job_type.params_schema())


def breaking(schema: dict[str, Any]) -> SearchStrategy[Any]:
    """Values the member schema ``schema`` rules out (the model may refuse more: pydantic's
    lax mode takes "5" for 5, which the schema does not promise)."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    options: list[SearchStrategy[Any]] = [
        st.lists(st.integers(), min_size=1, max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2),
    ]
    if len(branches) > 1:  # a date or an instant: words are neither
        options.append(st.text(string.ascii_letters, min_size=1, max_size=12))
    elif branches[0].get("type") == "integer":
        bounds = branches[0]
        if "minimum" in bounds:
            options.append(st.integers(max_value=bounds["minimum"] - 1))
        if "maximum" in bounds:
            options.append(st.integers(min_value=bounds["maximum"] + 1))
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(_fractional))
    elif "enum" in branches[0]:
        allowed = branches[0]["enum"]
        options.append(st.text(max_size=12).filter(lambda s: s not in allowed))
    elif branches[0].get("type") == "string":
        text = branches[0]
        if "maxLength" in text:
            longest = text["maxLength"]
            options.append(st.text(min_size=1, max_size=5).map(lambda s: "x" * longest + s))
        if text.get("minLength", 0) > 0:
            options.append(st.just(""))
        if text.get("format") == "email":
            options.append(st.text(max_size=30).filter(lambda s: "@" not in s))
        if "pattern" in text:
            pattern = text["pattern"]
            options.append(st.text(max_size=30).filter(lambda s: not re.search(pattern, s)))
    return st.one_of(options)


def _fractional(value: float) -> bool:
    return not value.is_integer()


def properties_of(job_type: JobType) -> dict[str, Any]:
    properties: dict[str, Any] = job_type.params_schema().get("properties", {})
    return properties


def test_every_built_in_type_is_covered() -> None:
    assert {jt.name for jt in JOB_TYPES} >= {
        "demo.steps",
        "email.send",
        "export.csv",
        "export.xlsx",
        "report.xlsx",
        "users.process",
    }


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=by_name)
@PROPERTIES
@given(data=st.data())
def test_what_the_schema_admits_validates(job_type: JobType, data: st.DataObject) -> None:
    params = data.draw(admitted(job_type))
    try:
        job_type.validate(params)
    except ValidationError as exc:
        broken = {(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()}
        assert broken <= CROSS_FIELD_RULES, broken


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=by_name)
@PROPERTIES
@given(data=st.data())
def test_validated_params_survive_the_trip_through_json(
    job_type: JobType, data: st.DataObject
) -> None:
    """The job row stores ``model_dump(mode="json")``; reading it back gives the same params."""
    try:
        model = job_type.validate(data.draw(admitted(job_type)))
    except ValidationError:
        return  # a cross-field rule; see test_what_the_schema_admits_validates
    stored = model.model_dump(mode="json")
    again = job_type.validate(stored)
    assert again == model
    assert again.model_dump(mode="json") == stored


@pytest.mark.parametrize("job_type", [jt for jt in JOB_TYPES if properties_of(jt)], ids=by_name)
@PROPERTIES
@given(data=st.data())
def test_a_member_outside_its_schema_is_refused(job_type: JobType, data: st.DataObject) -> None:
    params = dict(data.draw(admitted(job_type)))
    name, schema = data.draw(st.sampled_from(sorted(properties_of(job_type).items())))
    params[name] = data.draw(breaking(schema), label=name)
    with pytest.raises(ValidationError) as refused:
        job_type.validate(params)
    assert name in {e["loc"][0] for e in refused.value.errors()}


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=by_name)
@PROPERTIES
@given(data=st.data())
def test_an_unknown_member_is_refused(job_type: JobType, data: st.DataObject) -> None:
    params = dict(data.draw(admitted(job_type)))
    name = data.draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in params))
    closed = job_type.params_schema().get("additionalProperties") is False
    assert closed, f"{job_type.name} params should refuse unknown members"
    params[name] = data.draw(JSON)
    with pytest.raises(ValidationError) as refused:
        job_type.validate(params)
    assert (name,) in {e["loc"] for e in refused.value.errors()}


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=by_name)
@PROPERTIES
@given(data=st.data())
def test_validation_fails_only_with_validation_error(
    job_type: JobType, data: st.DataObject
) -> None:
    """Any JSON at all, or the type's own members set to any JSON values: valid or a
    ValidationError, never another exception (a 500 at submit)."""
    members = st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(JSON, breaking(schema))
            for name, schema in properties_of(job_type).items()
        },
    )
    raw = data.draw(st.one_of(JSON, members, admitted(job_type)))
    with contextlib.suppress(ValidationError):
        job_type.validate(raw)


# --- the calendar's ends ---------------------------------------------------------------------

LAST_DAY = [
    {"created_from": "2026-01-01", "created_to": "9999-12-31"},
    {"created_from": "2026-01-01", "created_to": "9999-12-31T23:59:59.999999Z"},
]


@pytest.mark.parametrize("params", LAST_DAY)
@pytest.mark.parametrize(
    "job_type",
    [jt for jt in JOB_TYPES if jt.name in ("export.csv", "export.xlsx", "report.xlsx")],
    ids=by_name,
)
def test_a_created_to_on_the_last_day_of_the_calendar_is_refused(
    job_type: JobType, params: dict[str, Any]
) -> None:
    """A bound whose next day is off the calendar is a 422 at submit, not a 500 or a job
    that fails later."""
    with pytest.raises(ValidationError, match="must fall between"):
        job_type.validate(params)


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=by_name)
@PROPERTIES
@given(data=st.data())
def test_odd_text_and_deep_nesting_fail_only_with_validation_error(
    job_type: JobType, data: st.DataObject
) -> None:
    """Members set to odd text (NUL, controls, lone surrogates, separators, very long) or to
    arrays nested near the parser's depth: valid or a ValidationError, never a 500 at submit."""
    deep = st.integers(min_value=1, max_value=900).map(
        lambda n: functools.reduce(lambda inner, _: [inner], range(n), 1)
    )
    value = st.one_of(ODD_TEXT, odd_json(), deep)
    members = st.fixed_dictionaries({}, optional=dict.fromkeys(properties_of(job_type), value))
    with contextlib.suppress(ValidationError):
        job_type.validate(data.draw(members))
