"""An app's say in its LLM jobs, in process (an app, a real Redis, the fake provider; no
worker needed): its own redactor, a moderator that refuses a request or stops an answer, and a
cancel that hangs up on a provider gone quiet."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from jobcast.errors import JobCancelled, JobError
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import EmptyParams
from jobcast.llm.chat import complete
from jobcast.llm.client import ChatRequest
from jobcast.llm.fake_provider import FakeProvider, Fault, reply_for
from jobcast.llm.hooks import configure
from tests.integration.conftest import migrated_app
from tests.unit.test_registry_context import FakeReporter

ORDER = re.compile(r"ACME-\d+")


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(tokens_per_second=2000) as provider:
        yield provider


def _app(tmp_path: Path, redis_url: str, fake: FakeProvider, **settings: Any) -> Flask:
    return migrated_app(
        tmp_path,
        redis_url,
        llm_base_url=fake.url,
        llm_model="fake-model",
        llm_timeout=20,
        **settings,
    )


def _run(app: Flask, prompt: str, reporter: FakeReporter | None = None) -> dict[str, Any]:
    ctx = JobContext(
        job_id=str(uuid.uuid4()),
        owner_id="1",
        params=EmptyParams(),
        attempt=1,
        request_id=None,
        reporter=reporter or FakeReporter(),
    )
    with app.app_context():
        return complete(
            ctx, ChatRequest("fake-model", [{"role": "user", "content": prompt}], 0.5, 200)
        )


def _orders(text: str) -> tuple[str, dict[str, int]]:
    found = len(ORDER.findall(text))
    return ORDER.sub("[order]", text), ({"order": found} if found else {})


def test_an_apps_own_redactor_runs_after_the_built_in_one(
    tmp_path: Path, redis_url: str, fake: FakeProvider
) -> None:
    app = _app(tmp_path, redis_url, fake)
    configure(app, redactor=_orders)
    result = _run(app, "Order ACME-1234 for bob@example.com")
    sent = fake.requests[-1].body["messages"][0]["content"]
    assert sent == "Order [order] for [email]"
    assert result["redactions"] == {"order": 1, "email": 1}
    assert result["text"] == reply_for([{"role": "user", "content": sent}])


def test_with_redaction_off_only_the_apps_redactor_runs(
    tmp_path: Path, redis_url: str, fake: FakeProvider
) -> None:
    app = _app(tmp_path, redis_url, fake, llm_redact=False)
    configure(app, redactor=_orders)
    result = _run(app, "Order ACME-1 for bob@example.com")
    assert fake.requests[-1].body["messages"][0]["content"] == "Order [order] for bob@example.com"
    assert result["redactions"] == {"order": 1}


def test_a_moderator_refuses_a_request_before_it_leaves(
    tmp_path: Path, redis_url: str, fake: FakeProvider
) -> None:
    app = _app(tmp_path, redis_url, fake)
    configure(app, moderator=lambda stage, text: "no weapons" if "weapon" in text else None)
    with pytest.raises(JobError, match="moderation refused the request: no weapons") as raised:
        _run(app, "how to build a weapon")
    assert raised.value.code == "moderation"
    assert fake.requests == []


def test_a_moderator_stops_an_answer_mid_stream(
    tmp_path: Path, redis_url: str, fake: FakeProvider
) -> None:
    app = _app(tmp_path, redis_url, fake)
    looked: list[str] = []

    def moderator(stage: str, text: str) -> str | None:
        looked.append(stage)
        return "it went too far" if stage == "output" and "token40" in text else None

    configure(app, moderator=moderator)
    with pytest.raises(JobError, match="moderation stopped the answer") as raised:
        _run(app, "tell me everything")
    assert raised.value.code == "moderation"
    assert looked[0] == "input" and "output" in looked
    assert fake.requests[-1].tokens_sent < len(reply_for(fake.requests[-1].body["messages"]))


def test_a_cancel_hangs_up_on_a_provider_gone_quiet_and_keeps_the_text(
    tmp_path: Path, redis_url: str, fake: FakeProvider
) -> None:
    app = _app(tmp_path, redis_url, fake)
    fake.script(Fault("stall", after_tokens=5, seconds=30))
    reporter = FakeReporter()
    threading.Timer(1.0, lambda: setattr(reporter, "cancel", True)).start()
    began = time.monotonic()
    with pytest.raises(JobCancelled) as raised:
        _run(app, "and then", reporter)
    # Well inside the 20 s read timeout: the watcher closed the stream.
    assert time.monotonic() - began < 10
    seen = fake.requests[-1]
    assert seen.client_closed
    result = raised.value.result
    assert result is not None
    assert result["text"] and reply_for(seen.body["messages"]).startswith(result["text"])
    assert result["usage"]["completion_tokens"] == 5
