"""A job's text output: deltas merged into few job.output events, none of the text lost."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobcast.errors import JobCancelled
from jobcast.jobs import output as output_module
from jobcast.jobs.context import JobContext
from jobcast.jobs.output import OutputBuffer
from jobcast.jobs.registry import EmptyParams
from tests.unit.test_registry_context import FakeClock, FakeReporter


def joined(sent: list[tuple[int, str, bool]]) -> str:
    """What a client builds: each piece at its index, a restart dropping what it had."""
    text = ""
    for index, piece, restart in sent:
        if restart:
            text = ""
        assert index == len(text)
        text += piece
    return text


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(output_module, "time", fake)
    return fake


def _context(reporter: FakeReporter, interval: float = 0.05) -> JobContext[EmptyParams]:
    return JobContext(
        job_id="job-1",
        owner_id="7",
        params=EmptyParams(),
        attempt=1,
        request_id=None,
        reporter=reporter,
        output_interval=interval,
    )


def test_a_thousand_deltas_a_second_become_about_twenty_events(clock: FakeClock) -> None:
    reporter = FakeReporter()
    ctx = _context(reporter)
    for i in range(1000):
        ctx.output(f"t{i} ")
        clock.now += 0.001
    ctx.flush()
    assert 19 <= len(reporter.outputs) <= 22
    assert joined(reporter.outputs) == "".join(f"t{i} " for i in range(1000))


@settings(max_examples=200, deadline=None)
@given(
    deltas=st.lists(st.text(max_size=8), max_size=60),
    gaps=st.lists(st.floats(min_value=0, max_value=0.2), min_size=60, max_size=60),
)
def test_the_pieces_in_order_are_exactly_the_output(deltas: list[str], gaps: list[float]) -> None:
    clock = FakeClock()
    original = output_module.time
    output_module.time = clock  # type: ignore[assignment]
    try:
        reporter = FakeReporter()
        ctx = _context(reporter)
        for delta, gap in zip(deltas, gaps, strict=False):
            ctx.output(delta)
            clock.now += gap
        whole = ctx.stream_text([])
    finally:
        output_module.time = original
    assert whole == "".join(deltas) == joined(reporter.outputs) == ctx.output_text
    assert all(piece for _, piece, _ in reporter.outputs)


def test_stream_text_returns_the_whole_output_and_sends_the_tail() -> None:
    reporter = FakeReporter()
    ctx = _context(reporter, interval=3600)
    assert ctx.stream_text(["Hel", "lo", " wörld 🎉"]) == "Hello wörld 🎉"
    assert reporter.outputs == [(0, "Hel", False), (3, "lo wörld 🎉", False)]


def test_a_restart_starts_the_output_again_at_index_zero() -> None:
    reporter = FakeReporter()
    ctx = _context(reporter, interval=0)
    ctx.stream_text(["abc", "def"])
    ctx.restart_output()
    ctx.stream_text(["xy"])
    assert reporter.outputs == [(0, "abc", False), (3, "def", False), (0, "xy", True)]
    assert ctx.output_text == "xy" == joined(reporter.outputs)


def test_a_cancel_stops_the_stream_after_sending_what_was_written() -> None:
    reporter = FakeReporter()
    ctx = _context(reporter, interval=0)
    ctx.output("first ")
    reporter.cancel = True
    with pytest.raises(JobCancelled):
        ctx.stream_text(["second ", "third"])
    assert joined(reporter.outputs) == "first second " == ctx.output_text


def test_empty_deltas_send_nothing() -> None:
    sent: list[tuple[int, str, bool]] = []
    buffer = OutputBuffer(lambda *args: sent.append(args), 0)
    assert buffer.write("") is False and buffer.flush() is False
    assert sent == []
