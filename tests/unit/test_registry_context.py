"""The job registry (``@job``) and JobContext: progress coalescing, cancellation, result files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from jobcast.errors import JobCancelled, TransientJobError
from jobcast.jobs import context as context_module
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import EmptyParams, JobType, Registry, job

# --- the registry ---------------------------------------------------------------------------


class SizeParams(BaseModel):
    model_config = {"extra": "forbid"}

    size: int = Field(3, ge=1, le=10)


def test_job_decorator_registers_the_function_with_its_policy() -> None:
    reg = Registry()

    @job("x.sized", params=SizeParams, bound="cpu", time_limit=5, max_retries=1, into=reg)
    def sized(ctx: JobContext[SizeParams]) -> None:
        """Does sized things.

        More words that are not the title.
        """

    job_type = reg.get("x.sized")
    assert job_type is not None
    assert job_type.func is sized
    assert job_type.params is SizeParams
    assert job_type.title == "Does sized things."
    assert (job_type.queue, job_type.time_limit, job_type.max_retries) == ("jobcast.cpu", 5, 1)
    assert job_type.retry_on == (TransientJobError,)


def test_explicit_title_wins_and_io_is_the_default_queue() -> None:
    reg = Registry()

    @job("x.titled", title="A title", into=reg)
    def titled(ctx: JobContext[EmptyParams]) -> None:
        """Docstring title."""

    job_type = reg.get("x.titled")
    assert job_type is not None
    assert job_type.title == "A title" and job_type.queue == "jobcast.io"


def test_title_falls_back_to_the_name_without_a_docstring() -> None:
    reg = Registry()
    job("x.bare", into=reg)(lambda ctx: None)
    job_type = reg.get("x.bare")
    assert job_type is not None and job_type.title == "x.bare"


def test_a_second_function_under_a_taken_name_is_refused() -> None:
    reg = Registry()
    job("x.dup", into=reg)(lambda ctx: None)
    with pytest.raises(ValueError, match=r"x\.dup"):
        job("x.dup", into=reg)(lambda ctx: None)


def test_registering_the_same_function_again_is_harmless() -> None:
    reg = Registry()

    def func(ctx: JobContext[EmptyParams]) -> None: ...

    job("x.same", into=reg)(func)
    job("x.same", into=reg)(func)  # a module imported twice
    assert reg.names() == ["x.same"]


def test_names_and_iteration_are_sorted_and_unknown_names_are_none() -> None:
    reg = Registry()
    for name in ("b.two", "c.three", "a.one"):
        job(name, into=reg)(lambda ctx: None)
    assert reg.names() == ["a.one", "b.two", "c.three"]
    assert [jt.name for jt in reg] == ["a.one", "b.two", "c.three"]
    assert reg.get("nope") is None


def _job_type(**policy: Any) -> JobType:
    return JobType(name="x", func=lambda ctx: None, params=SizeParams, title="x", **policy)


def test_validate_applies_defaults_to_missing_params() -> None:
    assert _job_type().validate(None) == SizeParams(size=3)
    assert _job_type().validate({"size": 7}) == SizeParams(size=7)


@pytest.mark.parametrize("raw", [{"size": 0}, {"size": "many"}, {"other": 1}, [1, 2]])
def test_validate_rejects_params_outside_the_model(raw: Any) -> None:
    with pytest.raises(ValidationError):
        _job_type().validate(raw)


def test_params_schema_is_the_models_json_schema() -> None:
    schema = _job_type().params_schema()
    assert schema["properties"]["size"]["maximum"] == 10
    assert schema["additionalProperties"] is False


def test_retry_delay_doubles_per_attempt_up_to_the_cap() -> None:
    job_type = _job_type(retry_backoff=2.0, retry_backoff_max=30.0)
    assert [job_type.retry_delay(n) for n in (1, 2, 3, 4, 5, 6, 50)] == [
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
    ]


# --- the context ----------------------------------------------------------------------------


class FakeReporter:
    """Records what the context sends; cancellation and staging are under the test's control."""

    def __init__(self, staging_dir: Path | None = None) -> None:
        self.sent: list[tuple[float, str | None]] = []
        self.outputs: list[tuple[int, str, bool]] = []
        self.cancel = False
        self.staging_dir = staging_dir or Path("/nonexistent")

    def progress(self, percent: float, message: str | None) -> None:
        if self.cancel:  # the contract: a cancelled job's progress is refused, not sent
            raise JobCancelled("job-1")
        self.sent.append((percent, message))

    def output(self, index: int, text: str, restart: bool) -> None:
        self.outputs.append((index, text, restart))

    def cancel_requested(self) -> bool:
        return self.cancel

    def staging_path(self, filename: str) -> Path:
        return self.staging_dir / filename


class FakeClock:
    """Stands in for the ``time`` module the context reads ``monotonic()`` from."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(context_module, "time", fake)
    return fake


def _context(reporter: FakeReporter, interval: float = 0.1) -> JobContext[EmptyParams]:
    return JobContext(
        job_id="job-1",
        owner_id="7",
        params=EmptyParams(),
        attempt=1,
        request_id="req-1",
        reporter=reporter,
        interval=interval,
    )


def test_thousand_calls_within_one_interval_send_only_the_first(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    for i in range(1000):
        ctx.progress(i / 20)  # up to 49.95%
        clock.now += 0.00009  # 1000 calls in 0.09 s
    assert reporter.sent == [(0.0, None)]


def test_thousand_calls_in_a_real_tight_loop_send_very_few_events() -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    for i in range(1000):
        ctx.progress(i / 20, f"item {i}")
    ctx.flush()
    assert len(reporter.sent) <= 5
    assert reporter.sent[-1] == (999 / 20, "item 999")


def test_one_event_per_interval_when_calls_spread_out(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    for i in range(100):  # one call every 0.01 s for 1 s
        ctx.progress(i / 2)
        clock.now += 0.01
    assert 9 <= len(reporter.sent) <= 11
    percents = [p for p, _ in reporter.sent]
    assert percents == sorted(percents)


def test_hundred_percent_is_always_sent_at_once(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.progress(10)
    ctx.progress(100, "done")  # no time has passed
    assert reporter.sent == [(10.0, None), (100.0, "done")]


def test_flush_sends_the_held_back_value_once(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.progress(10, "first")
    ctx.progress(20, "second")
    ctx.progress(30, "third")
    assert reporter.sent == [(10.0, "first")]
    ctx.flush()
    ctx.flush()
    assert reporter.sent == [(10.0, "first"), (30.0, "third")]


def test_flush_with_nothing_held_back_sends_nothing(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.flush()
    ctx.progress(50)
    ctx.flush()
    assert reporter.sent == [(50.0, None)]


def test_an_unchanged_value_is_not_sent_twice(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.progress(40, "same")
    clock.now += 1
    ctx.progress(40, "same")
    assert reporter.sent == [(40.0, "same")]


@pytest.mark.parametrize(("given", "sent"), [(-5, 0.0), (150, 100.0), ("42.5", 42.5)])
def test_progress_is_clamped_to_0_100_and_made_a_float(given: Any, sent: float) -> None:
    reporter = FakeReporter()
    _context(reporter).progress(given)
    assert reporter.sent == [(sent, None)]


def test_checkpoint_raises_job_cancelled_once_cancel_is_requested() -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.checkpoint()  # not cancelled: returns quietly
    assert ctx.cancelled is False
    reporter.cancel = True
    assert ctx.cancelled is True
    with pytest.raises(JobCancelled):
        ctx.checkpoint()


def test_progress_that_would_be_sent_is_a_cancellation_checkpoint(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.progress(10)
    reporter.cancel = True
    clock.now += 1
    with pytest.raises(JobCancelled):
        ctx.progress(20)
    assert reporter.sent == [(10.0, None)]


def test_an_unchanged_value_past_the_interval_still_checks_cancellation(
    clock: FakeClock,
) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    ctx.progress(40)
    reporter.cancel = True
    clock.now += 1
    with pytest.raises(JobCancelled):
        ctx.progress(40)  # nothing new to send: the context asks the reporter directly
    assert reporter.sent == [(40.0, None)]


def test_result_path_comes_from_the_reporter_and_is_remembered(tmp_path: Path) -> None:
    ctx = _context(FakeReporter(staging_dir=tmp_path))
    assert ctx.result_file is None
    path = ctx.result_path("report.csv", "text/csv")
    assert path == tmp_path / "report.csv"
    assert ctx.result_file == (path, "report.csv", "text/csv")


def test_context_exposes_the_jobs_identity() -> None:
    ctx = _context(FakeReporter())
    assert (ctx.job_id, ctx.owner_id, ctx.attempt, ctx.request_id) == ("job-1", "7", 1, "req-1")
    assert ctx.params == EmptyParams()
