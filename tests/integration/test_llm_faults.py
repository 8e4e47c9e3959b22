"""A misbehaving provider, through the real stack: web server, workers, the fake provider.

A fault before any text is tried again inside the job, unseen by its clients (three tries,
waiting as ``Retry-After`` asks); a refusal that will not change (a 4xx other than 408 and 429)
fails the job at once with error type ``provider``; a fault after text was streamed is a
visible retry whose output starts again (``restart: true``) and still ends as the full answer.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobcast.llm.fake_provider import FakeProvider, Fault, Seen, reply_for
from tests.integration.conftest import Stack
from tests.integration.llm_support import joined_output, unique
from tests.integration.support import Api, Listener

Event = tuple[str, dict[str, Any]]
#: JOBCAST_LLM_TIMEOUT in the llm_stack fixture.
PROVIDER_TIMEOUT = 2.0


@pytest.fixture
def user(llm_stack: Stack) -> Api:
    return llm_stack.api().signup()


@pytest.fixture
def ears(llm_stack: Stack, user: Api) -> Any:
    listener = llm_stack.listen(user.token)
    yield listener
    listener.close()


class Run:
    """One llm.chat job run to its end: its events, its row and the requests it made."""

    def __init__(
        self, user: Api, ears: Listener, provider: FakeProvider, *faults: Fault, **params: Any
    ) -> None:
        self.prompt = unique()
        asked = len(provider.requests)  # the provider is shared: look only past this point
        provider.script(*faults)
        job = user.submit("llm.chat", {"prompt": self.prompt, **params})
        self.events: list[Event] = ears.wait_terminal(job["id"])
        self.job: dict[str, Any] = user.get(f"/api/v1/jobs/{job['id']}").json()
        self.requests: list[Seen] = provider.requests[asked:]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    @property
    def reply(self) -> str:
        return reply_for([{"role": "user", "content": self.prompt}])

    def assert_succeeded_unseen(self, tries: int) -> None:
        """Succeeded on try ``tries`` of its one attempt, with the full answer, no retry shown."""
        assert self.names[-1] == "job.succeeded", self.events
        assert "job.retrying" not in self.names
        assert self.job["attempts"] == 1
        assert len(self.requests) == tries
        assert self.job["result"]["text"] == self.reply == joined_output(self.events)
        assert not any(p.get("restart") for n, p in self.events if n == "job.output")

    def assert_failed(self, error_type: str) -> dict[str, Any]:
        assert self.names[-1] == "job.failed", self.events
        assert self.job["status"] == "failed"
        error: dict[str, Any] = self.job["error"]
        assert error["type"] == error_type, error
        assert self.events[-1][1]["error"]["type"] == error_type
        return error


def test_a_429_with_retry_after_is_tried_again_after_waiting_as_asked(
    user: Api, ears: Listener, provider: FakeProvider
) -> None:
    run = Run(user, ears, provider, Fault("status", status=429, retry_after=1))
    run.assert_succeeded_unseen(tries=2)
    refused, answered = run.requests
    assert refused.status == 429 and answered.status == 200
    assert answered.started - refused.started >= 1.0


def test_a_503_twice_then_an_answer_succeeds_on_the_third_try(
    user: Api, ears: Listener, provider: FakeProvider
) -> None:
    run = Run(user, ears, provider, Fault("status", status=503), Fault("status", status=503))
    run.assert_succeeded_unseen(tries=3)
    assert [seen.status for seen in run.requests] == [503, 503, 200]


def test_a_500_on_every_try_fails_the_job_after_three_tries(
    user: Api, ears: Listener, provider: FakeProvider
) -> None:
    run = Run(user, ears, provider, *[Fault("status", status=500)] * 3)
    error = run.assert_failed("provider")
    assert "500" in error["message"]
    assert len(run.requests) == 3
    assert "job.retrying" not in run.names and run.job["attempts"] == 1
    # Tries refused before any text cost the owner nothing.
    assert user.get("/api/v1/me/usage").json()["tokens_today"]["used"] == 0


@pytest.mark.parametrize("status", [400, 404])
def test_a_refusal_that_will_not_change_fails_at_once(
    user: Api, ears: Listener, provider: FakeProvider, status: int
) -> None:
    run = Run(user, ears, provider, Fault("status", status=status))
    error = run.assert_failed("provider")
    assert str(status) in error["message"]
    assert len(run.requests) == 1
    assert "job.retrying" not in run.names and run.job["attempts"] == 1


@pytest.mark.parametrize("status", [408, 429])
def test_a_request_timeout_or_rate_limit_without_retry_after_is_tried_again(
    user: Api, ears: Listener, provider: FakeProvider, status: int
) -> None:
    run = Run(user, ears, provider, Fault("status", status=status))
    run.assert_succeeded_unseen(tries=2)
    assert [seen.status for seen in run.requests] == [status, 200]


def test_a_provider_silent_past_the_timeout_before_any_text_is_hung_up_on_and_tried_again(
    user: Api, ears: Listener, provider: FakeProvider
) -> None:
    run = Run(user, ears, provider, Fault("stall", after_tokens=0, seconds=5))
    run.assert_succeeded_unseen(tries=2)
    stalled, answered = run.requests
    assert stalled.tokens_sent == 0
    # The job gave up waiting after the timeout, not when the provider spoke again.
    assert answered.started - stalled.started >= PROVIDER_TIMEOUT
    _wait_for(lambda: stalled.ended is not None)
    assert stalled.client_closed


def test_a_connection_dropped_before_any_text_is_tried_again_inside_the_job(
    user: Api, ears: Listener, provider: FakeProvider
) -> None:
    run = Run(user, ears, provider, Fault("drop", after_tokens=0))
    run.assert_succeeded_unseen(tries=2)
    assert run.requests[0].tokens_sent == 0


def test_a_connection_dropped_after_text_is_a_visible_retry_that_starts_the_output_again(
    user: Api, ears: Listener, provider: FakeProvider
) -> None:
    run = Run(user, ears, provider, Fault("drop", after_tokens=10))
    assert run.names[-1] == "job.succeeded", run.events
    assert run.job["attempts"] == 2
    assert len(run.requests) == 2 and run.requests[0].tokens_sent == 10
    retrying = run.names.index("job.retrying")
    assert run.events[retrying][1]["error"]["type"] == "provider"
    assert "job.output" in run.names[:retrying]  # part of the answer had gone out
    after = [p for n, p in run.events[retrying:] if n == "job.output"]
    assert after[0]["index"] == 0 and after[0]["restart"] is True
    assert not any(p.get("restart") for p in after[1:])
    assert joined_output(run.events) == run.job["result"]["text"] == run.reply


def _wait_for(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
