"""A worker lost (SIGKILL) while an LLM answer streams: the job still ends, its clients get
every event, and an answer that is run again starts its output again rather than repeat it.

The provider sees the dead worker's connection close (it stops generating); the recovery sweep
finds the lapsed lease and runs the job again on a new worker, whose output begins with
``restart: true`` so that a client drops the half answer it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from jobcast.llm.fake_provider import FakeProvider, Fault, reply_for
from tests.faults.conftest import FaultStack, check_events, wait_until
from tests.integration.llm_support import joined_output, unique


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(tokens_per_second=1000) as fake:
        yield fake


@pytest.mark.timeout(180)
def test_an_answer_streaming_when_its_worker_is_killed_ends_and_restarts_its_output(
    fault_stack: Callable[..., FaultStack], provider: FakeProvider
) -> None:
    stack = fault_stack(JOBCAST_LLM_BASE_URL=provider.url, JOBCAST_LLM_MODEL="fake-model")
    api = stack.api().signup()
    listener = stack.listen(api.token)
    asked = len(provider.requests)
    provider.script(Fault("slow", seconds=0.05))  # about 3 s of answer
    prompt = unique()
    job_id = api.submit("llm.chat", {"prompt": prompt})["id"]
    wait_until(
        lambda: sum(n == "job.output" for n, _ in listener.for_job(job_id)) >= 3,
        60,  # the worker is started with the stack, not waited for
        "a few job.output events",
    )
    stack.kill("worker")
    seen_before_kill = max(p["seq"] for _, p in listener.for_job(job_id))
    cut = provider.requests[asked]
    wait_until(lambda: cut.ended is not None, 10, "the provider's stream ended")
    assert cut.client_closed  # the dead worker's connection closed: generation stopped
    time.sleep(2)
    stack.start_worker("worker-2")

    job = api.wait_job(job_id, timeout=90)
    assert job["status"] in ("succeeded", "failed"), job
    listener.wait_terminal(job_id, timeout=10)
    history = check_events(stack, job_id, listener)
    listener.close()
    if job["status"] == "failed":
        assert job["error"]["type"] and job["error"]["message"], job
        return
    assert job["attempts"] == 2, job
    retrying = [p["error"]["type"] for n, p in history if n == "job.retrying"]
    assert retrying == ["worker_lost"]
    text = job["result"]["text"]
    assert joined_output(history) == text == reply_for([{"role": "user", "content": prompt}])
    restarts = [p for n, p in history if n == "job.output" and p.get("restart")]
    assert restarts and all(p["seq"] > seen_before_kill for p in restarts)
    assert restarts[0]["index"] == 0
