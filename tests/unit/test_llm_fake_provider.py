"""FakeProvider: OpenAI's Chat Completions wire format, deterministic answers, scripted faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from jobcast.llm.fake_provider import FakeProvider, Fault, Seen, reply_for, split_tokens

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Summarise the report"},
]


@pytest.fixture
def llm() -> Iterator[FakeProvider]:
    with FakeProvider(tokens_per_second=1000) as provider:
        yield provider


def _post(llm: FakeProvider, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(
        f"{llm.url}/chat/completions", json=body, headers=headers, stream=True, timeout=5
    )


def _stream_body(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": MESSAGES, "stream": True} | extra


def _read_events(response: requests.Response) -> tuple[list[str], Exception | None]:
    """The ``data:`` payloads received, and the error that cut the body short, if any."""
    events: list[str] = []
    try:
        for line in _data_lines(response):
            events.append(line.removeprefix("data: "))
    except requests.RequestException as exc:
        return events, exc
    return events, None


def _data_lines(response: requests.Response) -> Iterator[str]:
    return (line.decode() for line in response.iter_lines() if line.startswith(b"data: "))


def _chunks(events: list[str]) -> list[dict[str, Any]]:
    return [json.loads(event) for event in events if event != "[DONE]"]


def _content(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


def _wait_ended(seen: Seen, within: float) -> None:
    deadline = time.monotonic() + within
    while seen.ended is None and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stream_deltas_join_into_the_reply(llm: FakeProvider) -> None:
    response = _post(llm, _stream_body())
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Transfer-Encoding"] == "chunked"
    events, error = _read_events(response)
    chunks = _chunks(events)

    assert error is None
    assert events[-1] == "[DONE]"
    assert _content(chunks) == reply_for(MESSAGES)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)
    assert llm.requests[0].body["messages"] == MESSAGES
    assert llm.requests[0].tokens_sent == len(split_tokens(reply_for(MESSAGES)))


def test_reply_is_deterministic_and_long_enough_to_cancel_midway() -> None:
    reply = reply_for(MESSAGES)
    assert reply == reply_for(list(MESSAGES))
    assert reply.startswith("Echo: Summarise the report ")
    assert len(split_tokens(reply)) >= 50
    assert "".join(split_tokens(reply)) == reply


def test_reply_reads_text_parts_and_len_sets_the_token_count() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert reply_for(parts).startswith("Echo: hi ")
    assert len(split_tokens(reply_for([{"role": "user", "content": "LEN=200"}]))) == 200
    assert reply_for([{"role": "user", "content": "LEN=0"}]) == ""


def test_usage_chunk_follows_the_finish_when_asked_for(llm: FakeProvider) -> None:
    events, _ = _read_events(_post(llm, _stream_body(stream_options={"include_usage": True})))
    chunks = _chunks(events)
    usage = chunks[-1]["usage"]
    completion = len(split_tokens(reply_for(MESSAGES)))

    assert chunks[-1]["choices"] == []
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert usage["completion_tokens"] == completion
    assert usage["total_tokens"] == usage["prompt_tokens"] + completion
    assert usage["prompt_tokens"] > 0


def test_max_tokens_caps_the_stream_with_finish_reason_length(llm: FakeProvider) -> None:
    body = _stream_body(max_tokens=5, stream_options={"include_usage": True})
    chunks = _chunks(_read_events(_post(llm, body))[0])

    assert _content(chunks) == "".join(split_tokens(reply_for(MESSAGES))[:5])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_non_streaming_request_gets_one_completion(llm: FakeProvider) -> None:
    response = _post(llm, {"model": "m", "messages": MESSAGES, "max_tokens": 1000})
    completion = response.json()

    assert completion["object"] == "chat.completion"
    assert completion["model"] == "m"
    assert completion["choices"][0]["message"]["content"] == reply_for(MESSAGES)
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] == len(split_tokens(reply_for(MESSAGES)))


def test_models_lists_the_fake_model(llm: FakeProvider) -> None:
    models = requests.get(f"{llm.url}/models", timeout=5).json()
    assert models == {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1, 2]", b'{"model": "m"}'],
    ids=["not-json", "not-an-object", "no-messages"],
)
def test_bad_request_bodies_get_400(llm: FakeProvider, data: bytes) -> None:
    response = requests.post(f"{llm.url}/chat/completions", data=data, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_scripted_429_sends_retry_after_then_the_next_request_streams(llm: FakeProvider) -> None:
    llm.script(Fault("status", status=429, retry_after=2))

    refused = _post(llm, _stream_body())
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"

    events, error = _read_events(_post(llm, _stream_body()))
    assert error is None
    assert events[-1] == "[DONE]"
    assert [seen.status for seen in llm.requests] == [429, 200]


def test_faults_are_served_one_per_request_in_order(llm: FakeProvider) -> None:
    body = {"error": {"message": "busy", "type": "server_error", "code": None}}
    llm.script(Fault("status", status=500), Fault("status", status=503, body=body))

    statuses = [_post(llm, _stream_body()).status_code for _ in range(3)]

    assert statuses == [500, 503, 200]
    assert llm.requests[1].fault == Fault("status", status=503, body=body)


def test_drop_ends_the_body_early_without_done(llm: FakeProvider) -> None:
    llm.script(Fault("drop", after_tokens=3))

    events, error = _read_events(_post(llm, _stream_body()))

    assert isinstance(error, requests.exceptions.ChunkedEncodingError)
    assert "[DONE]" not in events
    assert _content(_chunks(events)) == "".join(split_tokens(reply_for(MESSAGES))[:3])
    assert llm.requests[0].tokens_sent == 3
    assert not llm.requests[0].client_closed


def test_drop_on_a_non_streaming_request_sends_no_answer(llm: FakeProvider) -> None:
    llm.script(Fault("drop"))
    with pytest.raises(requests.ConnectionError):
        _post(llm, {"model": "m", "messages": MESSAGES})


def test_stall_goes_silent_then_finishes(llm: FakeProvider) -> None:
    llm.script(Fault("stall", after_tokens=2, seconds=0.3))
    started = time.monotonic()

    events, error = _read_events(_post(llm, _stream_body()))

    assert time.monotonic() - started >= 0.3
    assert error is None
    assert _content(_chunks(events)) == reply_for(MESSAGES)


@pytest.mark.parametrize(
    "fault", [None, Fault("stall", after_tokens=3, seconds=30)], ids=["streaming", "stalled"]
)
def test_client_hanging_up_is_recorded_within_a_second(fault: Fault | None) -> None:
    with FakeProvider(tokens_per_second=20) as llm:
        if fault is not None:
            llm.script(fault)
        response = _post(llm, _stream_body())
        data = _data_lines(response)
        for _ in range(4):  # the role chunk and three tokens
            next(data)
        response.close()
        closed = time.monotonic()
        seen = llm.requests[0]
        _wait_ended(seen, within=2)

        assert seen.client_closed
        assert seen.ended is not None
        assert seen.ended - closed < 1.0
        assert 0 < seen.tokens_sent < len(split_tokens(reply_for(MESSAGES)))


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Bearer sk-t"}, 200)],
    ids=["missing", "wrong", "right"],
)
def test_api_key_is_enforced(headers: dict[str, str], status: int) -> None:
    with FakeProvider(tokens_per_second=1000, api_key="sk-t") as llm:
        response = _post(llm, _stream_body(), **headers)
        models = requests.get(f"{llm.url}/models", headers=headers, timeout=5)

        assert response.status_code == status
        assert models.status_code == status
        if status == 401:
            assert response.json()["error"]["code"] == "invalid_api_key"
        assert llm.requests[0].headers.get("authorization") == headers.get("Authorization")


def test_twenty_concurrent_streams_all_complete() -> None:
    start = threading.Barrier(20)

    def ask(n: int) -> str:
        messages = [{"role": "user", "content": f"question {n}"}]
        start.wait()
        events, error = _read_events(_post(provider, {"messages": messages, "stream": True}))
        assert error is None and events[-1] == "[DONE]"
        return _content(_chunks(events))

    with FakeProvider(tokens_per_second=200) as provider, ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(20)))

    assert answers == [reply_for([{"role": "user", "content": f"question {n}"}]) for n in range(20)]
    ended = [seen.ended for seen in provider.requests]
    assert None not in ended
    # Served side by side: every stream started before any finished.
    assert max(seen.started for seen in provider.requests) < min(e for e in ended if e is not None)


def test_stop_ends_a_stalled_stream_promptly() -> None:
    llm = FakeProvider(tokens_per_second=1000).start()
    llm.script(Fault("stall", after_tokens=1, seconds=30))
    response = _post(llm, _stream_body())
    data = _data_lines(response)
    for _ in range(2):  # the role chunk and the token before the stall
        next(data)
    started = time.monotonic()

    llm.stop()

    assert time.monotonic() - started < 1.0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        list(data)
    assert not llm.requests[0].client_closed


def test_fault_rejects_unknown_kinds_and_negative_numbers() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after_tokens"):
        Fault("drop", after_tokens=-1)


def test_on_token_is_told_each_streamed_token_and_when_it_went_out() -> None:
    calls: list[tuple[Seen, int, float]] = []
    with FakeProvider(
        tokens_per_second=1000, on_token=lambda seen, index, sent: calls.append((seen, index, sent))
    ) as llm:
        before = time.monotonic()
        events, error = _read_events(_post(llm, _stream_body()))
        after = time.monotonic()

    assert error is None and events[-1] == "[DONE]"
    assert [index for _, index, _ in calls] == list(range(len(split_tokens(reply_for(MESSAGES)))))
    assert all(seen is llm.requests[0] for seen, _, _ in calls)
    sent = [at for _, _, at in calls]
    assert sent == sorted(sent)
    assert before <= sent[0] and sent[-1] <= after
