"""Each user's LLM allowance, through the real stack (llm_stack: 4,000 tokens a day, two LLM
jobs at once, a budget of 50 a month).

A submit that would pass a limit is refused with a 429 ``llm-quota`` problem that says the
limit, what is used and what is left, and creates nothing; /me/usage shows the counters as runs
charge them; runs admitted one by one that together pass the daily limit stop mid-stream with
error type ``quota``, and the counter ends no further past the limit than one charging step.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from jobcast.llm.fake_provider import FakeProvider, Fault
from tests.integration.conftest import Stack
from tests.integration.llm_support import unique
from tests.integration.support import Api, assert_problem

DAILY_TOKENS = 4000
MAX_CONCURRENT = 2
MONTHLY_BUDGET = 50
#: How far past the limit concurrent runs may charge before they see it: a charging step
#: (16 tokens) per run, with room to spare.
OVERSHOOT = 100


@pytest.fixture
def user(llm_stack: Stack) -> Api:
    return llm_stack.api().signup()


def usage(user: Api) -> dict[str, Any]:
    response = user.get("/api/v1/me/usage")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def chat(user: Api, **params: Any) -> requests.Response:
    return user.post("/api/v1/jobs", json={"type": "llm.chat", "params": params})


def assert_quota_refusal(response: requests.Response, limit: float) -> dict[str, Any]:
    body = assert_problem(response, 429)
    assert body["type"].endswith("/llm-quota"), body
    assert body["limit"] == limit
    for member in ("used", "remaining"):
        assert isinstance(body[member], int | float), body
    assert int(response.headers["Retry-After"]) >= 1
    return body


def test_a_run_that_could_pass_the_daily_tokens_is_refused_and_creates_nothing(
    user: Api,
) -> None:
    prompt = "x" * 40  # 10 tokens: with max_tokens 3,995, five past the day's 4,000
    refused = chat(user, prompt=prompt, max_tokens=3995)
    body = assert_quota_refusal(refused, DAILY_TOKENS)
    assert body["used"] == 0 and body["remaining"] == DAILY_TOKENS
    assert str(DAILY_TOKENS) in body["detail"]
    assert user.get("/api/v1/jobs").json()["items"] == []
    assert usage(user)["tokens_today"]["used"] == 0


def test_usage_shows_what_a_run_charged_the_limits_and_what_is_left(user: Api) -> None:
    before = usage(user)
    assert before["llm_enabled"] is True
    assert before["tokens_today"] == {"used": 0, "limit": DAILY_TOKENS, "remaining": DAILY_TOKENS}
    assert before["active_jobs"] == {
        "used": 0,
        "limit": MAX_CONCURRENT,
        "remaining": MAX_CONCURRENT,
    }
    job = user.wait_job(user.submit("llm.chat", {"prompt": unique()})["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    tokens = result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    after = usage(user)
    assert after["tokens_today"] == {
        "used": tokens,
        "limit": DAILY_TOKENS,
        "remaining": DAILY_TOKENS - tokens,
    }
    assert after["cost_this_month"]["used"] == pytest.approx(result["cost"])
    assert after["cost_this_month"]["limit"] == MONTHLY_BUDGET
    assert after["cost_this_month"]["remaining"] == pytest.approx(MONTHLY_BUDGET - result["cost"])
    assert after["active_jobs"]["used"] == 0


def test_a_third_run_at_once_is_refused_until_one_of_the_two_ends(
    user: Api, provider: FakeProvider
) -> None:
    asked = len(provider.requests)
    provider.script(Fault("slow", seconds=0.05), Fault("slow", seconds=0.05))
    running = [user.submit("llm.chat", {"prompt": unique()})["id"] for _ in range(2)]
    # Both streams have reached the provider (and taken the two slow faults).
    _wait_for(lambda: len(provider.requests) >= asked + 2)
    body = assert_quota_refusal(chat(user, prompt=unique()), MAX_CONCURRENT)
    assert body["used"] == MAX_CONCURRENT and body["remaining"] == 0
    assert {job["id"] for job in user.get("/api/v1/jobs").json()["items"]} == set(running)
    for job_id in running:
        assert user.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    for job_id in running:
        assert user.wait_job(job_id)["status"] == "cancelled"
    again = chat(user, prompt=unique())
    assert again.status_code == 202, again.text
    assert user.wait_job(again.json()["id"])["status"] == "succeeded"


def test_a_run_that_could_pass_the_monthly_budget_is_refused(user: Api) -> None:
    # pricey-model costs 1,000 per 1,000 tokens each way: 100 tokens out alone cost 100.
    refused = chat(user, prompt=unique(), model="pricey-model", max_tokens=100)
    body = assert_quota_refusal(refused, MONTHLY_BUDGET)
    assert "budget" in body["detail"]
    assert user.get("/api/v1/jobs").json()["items"] == []


def test_runs_admitted_alone_that_together_pass_the_daily_tokens_stop_mid_stream(
    user: Api, provider: FakeProvider
) -> None:
    burn = user.wait_job(
        user.submit("llm.chat", {"prompt": unique("LEN=3300"), "max_tokens": 3400})["id"]
    )
    assert burn["status"] == "succeeded", burn
    assert burn["result"]["usage"]["completion_tokens"] == 3300
    left = DAILY_TOKENS - usage(user)["tokens_today"]["used"]
    # Each run may take its prompt plus 500 tokens: one fits in what is left, two do not.
    assert 505 < left < 2 * 500
    asked = len(provider.requests)
    provider.script(Fault("slow", seconds=0.004), Fault("slow", seconds=0.004))
    with ThreadPoolExecutor(2) as pool:
        submitted = list(
            pool.map(lambda _: chat(user, prompt=unique("LEN=500"), max_tokens=500), range(2))
        )
    for response in submitted:
        assert response.status_code == 202, response.text
    ended = [user.wait_job(response.json()["id"]) for response in submitted]
    assert len(provider.requests) == asked + 2
    assert {job["status"] for job in ended} <= {"succeeded", "failed"}, ended
    stopped = [job for job in ended if job["status"] == "failed"]
    assert stopped, ended
    for job in stopped:
        assert job["error"]["type"] == "quota", job
        assert str(DAILY_TOKENS) in job["error"]["message"]
    used = usage(user)["tokens_today"]["used"]
    assert used <= DAILY_TOKENS + OVERSHOOT


def _wait_for(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
