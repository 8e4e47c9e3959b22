"""One chat completion inside a job: redacted, moderated, answered from the cache or streamed
from the provider as ``job.output`` events, metered against the owner's allowance.

Faults before any text are tried again here (three tries, honouring ``Retry-After``); a fault
after text was streamed is a visible retry (``TransientJobError``: the job goes ``retrying`` and
its next attempt starts the output again with ``restart: true``); a refusal that will not change
(a 4xx other than 408 and 429) fails the job at once with error type ``provider``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

from jobcast.errors import JobCancelled, JobError, TransientJobError
from jobcast.jobs.context import JobContext
from jobcast.llm import cache
from jobcast.llm.client import ChatRequest, Completion, ProviderFault, open_chat
from jobcast.llm.hangup import hang_up_on_cancel
from jobcast.llm.hooks import LLMHooks, current_hooks
from jobcast.llm.meter import Meter
from jobcast.llm.quota import cost_of, estimate_tokens
from jobcast.llm.redact import redact
from jobcast.llm.settings import LLMSettings
from jobcast.runtime import current_runtime

TRIES = 3
#: Characters of new output between two looks of the moderator at the answer.
_MODERATE_EVERY = 200
#: Characters per piece when a cached answer is streamed again.
_REPLAY_PIECE = 64


def complete(ctx: JobContext[Any], request: ChatRequest) -> dict[str, Any]:
    """Run ``request`` for ``ctx``'s owner; the result the llm.* job types return."""
    rt = current_runtime()
    settings: LLMSettings = rt.settings
    hooks = current_hooks()
    messages, redactions = _redacted(request.messages, settings, hooks)
    request = replace(request, messages=messages)
    _moderate(hooks, "input", "\n".join(m["content"] for m in messages))
    key = cache.cache_key(settings, ctx.owner_id, asdict(request))
    hit = cache.lookup(rt.redis, key) if key else None
    if hit is not None:
        return _replay(ctx, settings, hit, redactions)
    prompt = sum(estimate_tokens(m["content"]) for m in messages)
    meter = Meter(settings, rt.redis, ctx.owner_id, request.model, prompt)
    usage = _stream(ctx, settings, hooks, request, meter, redactions)
    if key:
        answer = {"text": ctx.output_text, "usage": usage, "model": request.model}
        cache.keep(rt.redis, key, settings.llm_cache_ttl_seconds, answer)
    return _result(settings, request.model, ctx.output_text, usage, redactions, cached=False)


def _stream(
    ctx: JobContext[Any],
    settings: LLMSettings,
    hooks: LLMHooks,
    request: ChatRequest,
    meter: Meter,
    redactions: dict[str, int],
) -> dict[str, int]:
    """Stream the answer into the job's output; the usage (the provider's, or estimated)."""
    for tries in range(1, TRIES + 1):
        completion: Completion | None = None
        meter.begin()
        try:
            completion = open_chat(
                settings.llm_base_url, settings.llm_api_key, settings.llm_timeout, request
            )
            with hang_up_on_cancel(ctx, completion):
                _follow(ctx, hooks, completion, meter)
            return meter.settle(completion.usage)
        except JobCancelled:
            usage = meter.settle(completion.usage if completion else None)
            raise _keeping(ctx, settings, request, usage, redactions) from None
        except ProviderFault as fault:
            usage = meter.settle(completion.usage if completion else None)
            if ctx.cancelled:  # the watcher hung up on a provider that had gone quiet
                raise _keeping(ctx, settings, request, usage, redactions) from None
            if not fault.retriable:
                raise JobError(str(fault), code="provider") from None
            if ctx.output_text:
                raise TransientJobError(
                    f"{fault}, after part of the answer was sent; it starts again",
                    code="provider",
                ) from None
            if tries == TRIES:
                raise JobError(f"{fault} ({TRIES} tries)", code="provider") from None
            _wait(ctx, fault.retry_after if fault.retry_after is not None else 2 ** (tries - 1))
        finally:
            if completion is not None:
                completion.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _keeping(
    ctx: JobContext[Any],
    settings: LLMSettings,
    request: ChatRequest,
    usage: dict[str, int],
    redactions: dict[str, int],
) -> JobCancelled:
    """The cancel, with the text streamed so far (all of it sent) as the job's result."""
    ctx.flush_output()
    partial = _result(settings, request.model, ctx.output_text, usage, redactions, cached=False)
    return JobCancelled(ctx.job_id, result=partial)


def _follow(ctx: JobContext[Any], hooks: LLMHooks, completion: Completion, meter: Meter) -> None:
    """Each delta into the output (a cancellation checkpoint as events go out) and the meter."""
    looked = 0
    for delta in completion.deltas():
        ctx.output(delta)
        meter.streamed(1)
        if hooks.moderator is not None and len(ctx.output_text) - looked >= _MODERATE_EVERY:
            looked = len(ctx.output_text)
            _moderate(hooks, "output", ctx.output_text)
    ctx.flush()
    if hooks.moderator is not None:
        _moderate(hooks, "output", ctx.output_text)


def _wait(ctx: JobContext[Any], seconds: float) -> None:
    """Sleep before the next try, looking for a cancel every half second."""
    deadline = time.monotonic() + min(seconds, 60.0)
    while (left := deadline - time.monotonic()) > 0:
        ctx.checkpoint()
        time.sleep(min(0.5, left))


def _replay(
    ctx: JobContext[Any], settings: LLMSettings, hit: dict[str, Any], redactions: dict[str, int]
) -> dict[str, Any]:
    """A cached answer, streamed as the provider's would be: the same events, in pieces."""
    text = str(hit["text"])
    ctx.stream_text(text[i : i + _REPLAY_PIECE] for i in range(0, len(text), _REPLAY_PIECE))
    result = _result(settings, str(hit["model"]), text, hit["usage"], redactions, cached=True)
    result["cost"] = 0.0 if result["cost"] is not None else None
    return result


def _redacted(
    messages: list[dict[str, str]], settings: LLMSettings, hooks: LLMHooks
) -> tuple[list[dict[str, str]], dict[str, int]]:
    counts: Counter[str] = Counter()
    cleaned = []
    for message in messages:
        content = message["content"]
        if settings.llm_redact:
            content, found = redact(content)
            counts.update(found)
        if hooks.redactor is not None:
            content, found = hooks.redactor(content)
            counts.update(found)
        cleaned.append({**message, "content": content})
    return cleaned, dict(counts)


def _moderate(hooks: LLMHooks, stage: str, text: str) -> None:
    if hooks.moderator is None:
        return
    reason = hooks.moderator(stage, text)
    if reason:
        verb = "refused the request" if stage == "input" else "stopped the answer"
        raise JobError(f"moderation {verb}: {reason}", code="moderation")


def _result(
    settings: LLMSettings,
    model: str,
    text: str,
    usage: dict[str, int],
    redactions: dict[str, int],
    *,
    cached: bool,
) -> dict[str, Any]:
    return {
        "text": text,
        "usage": usage,
        "cost": cost_of(
            settings.llm_price_table, model, usage["prompt_tokens"], usage["completion_tokens"]
        ),
        "redactions": redactions,
        "cached": cached,
        "model": model,
    }
