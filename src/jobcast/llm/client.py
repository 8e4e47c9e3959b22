"""The provider: any OpenAI-compatible Chat Completions server, streamed with the official
``openai`` SDK (it speaks the protocol's streaming framing and reports a provider's errors as
typed exceptions with their status and headers; its own retries are off, jobcast's are
visible). The API key stays here: every message that leaves this module is scrubbed of it.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jobcast.errors import JobError

try:
    import httpx
    import openai
except ImportError:  # pragma: no cover - the llm extra missing
    openai = None  # type: ignore[assignment]

#: Secrets shaped like API keys, hidden in what a provider says back (an error may quote one).
_KEYISH = re.compile(r"\b(?:sk-[A-Za-z0-9_*.-]{6,}|AKIA[A-Z0-9]{16})")


class ProviderFault(Exception):
    """The provider did not answer in full: ``retriable`` when trying again may help."""

    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int


@dataclass
class Completion:
    """One streamed answer: iterate ``deltas()``; ``usage`` is the provider's once it ended."""

    stream: Any
    usage: dict[str, int] | None = None
    finished: bool = False
    chunks: int = 0
    _key: str = field(default="", repr=False)

    def deltas(self) -> Iterator[str]:
        try:
            for chunk in self.stream:
                if chunk.usage is not None:
                    self.usage = {
                        "prompt_tokens": chunk.usage.prompt_tokens,
                        "completion_tokens": chunk.usage.completion_tokens,
                    }
                for choice in chunk.choices:
                    if choice.finish_reason is not None:
                        self.finished = True
                    if choice.delta is not None and choice.delta.content:
                        self.chunks += 1
                        yield choice.delta.content
        except (openai.APIError, httpx.HTTPError) as exc:
            # A stream that breaks mid-answer reaches here as the transport's own error.
            raise fault_of(exc, self._key) from None
        if not self.finished:
            raise ProviderFault("the provider's stream ended before its answer did", retriable=True)

    def close(self) -> None:
        """Hang up: the provider sees the connection close and stops generating.

        The socket is shut down first: closing the response alone does not wake a read that
        another thread is blocked in (the cancel watcher calls this from one). Only while the
        response is open: once read to its end, its connection is back in the pool, another
        request's.
        """
        response = self.stream.response
        if not response.is_closed:
            network = response.extensions.get("network_stream")
            sock = network.get_extra_info("socket") if network is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.stream.close()


def open_chat(base_url: str, api_key: str, timeout: float, request: ChatRequest) -> Completion:
    """Send the request; raises ProviderFault when it is refused before any text."""
    if openai is None:
        raise JobError("LLM jobs need the openai package: pip install 'jobcast[llm]'")
    client = _client(base_url, api_key, timeout)
    try:
        stream = client.chat.completions.create(
            model=request.model,
            messages=request.messages,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
    except openai.APIError as exc:
        raise fault_of(exc, api_key) from None
    return Completion(stream, _key=api_key)


@lru_cache(maxsize=8)
def _client(base_url: str, api_key: str, timeout: float) -> Any:
    """One client (one connection pool) per provider and process."""
    return openai.OpenAI(
        base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=0
    )


def fault_of(exc: Exception, api_key: str) -> ProviderFault:
    """What a provider's error means for a retry, in words fit for the job's owner."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        said = scrub(_message(exc), api_key)
        retriable = status in (408, 429) or status >= 500
        return ProviderFault(
            f"the provider answered HTTP {status}: {said}",
            retriable=retriable,
            retry_after=retry_after(exc.response.headers.get("retry-after")),
        )
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return ProviderFault("the provider did not answer in time", retriable=True)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return ProviderFault("the connection to the provider was lost", retriable=True)
    return ProviderFault(
        f"the provider's answer was not understood ({type(exc).__name__})", retriable=False
    )


def _message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:300]
    return str(exc.message)[:300]


def scrub(text: str, api_key: str) -> str:
    """``text`` without the key, nor anything shaped like one."""
    if api_key:
        text = text.replace(api_key, "***")
    return _KEYISH.sub("***", text)


def retry_after(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) in seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
