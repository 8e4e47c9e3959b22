"""A local OpenAI-compatible Chat Completions server for tests, benchmarks and keyless trials.

LLM jobs talk to an OpenAI-style endpoint. Cancellation, retries and resumption need that
endpoint to misbehave on cue, and a keyless trial of jobcast needs one that costs nothing, so this
module serves the same wire format from the standard library alone: deterministic answers
(``reply_for``), tokens paced like a model's, and scripted faults (``Fault``).

What goes on the wire, and how, is ``fake_wire``'s part: the HTTP handler, OpenAI's chunk
framing, and noticing a client hanging up mid-stream.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from jobcast.llm.fake_wire import MODEL, STOP_POLL, Server, error_body

__all__ = [
    "FILLER_WORDS",
    "MODEL",
    "FakeProvider",
    "Fault",
    "OnToken",
    "Seen",
    "error_body",
    "main",
    "prompt_tokens",
    "reply_for",
    "split_tokens",
]

#: Filler words after the echo: enough tokens for a mid-stream cancel or resume.
FILLER_WORDS = 60

FaultKind = Literal["status", "drop", "stall", "slow"]
_FAULT_KINDS = frozenset(get_args(FaultKind))
_LEN = re.compile(r"LEN=(\d+)")
# Words with their leading whitespace; the second branch keeps trailing whitespace, so the tokens
# always join back into the exact reply.
_TOKEN = re.compile(r"\s*\S+|\s+")
# A typo like LEN=9999999999 should not build a reply the size of the machine's memory.
_MAX_LEN = 100_000


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, served to one chat completion request.

    ``status`` answers ``status`` with ``body`` (an OpenAI-style error by default) and, if set, a
    ``Retry-After`` header, before any token. ``drop`` hangs up after ``after_tokens`` tokens, with
    no ``[DONE]``. ``stall`` goes silent for ``seconds`` after ``after_tokens`` tokens, then carries
    on. ``slow`` streams every token ``seconds`` apart. A non-streaming request is dropped before
    any answer, or (stall, slow) answered ``seconds`` late.
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    after_tokens: int = 0
    body: dict[str, Any] | None = None
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"Fault kind={self.kind!r}: expected one of {sorted(_FAULT_KINDS)}")
        if self.after_tokens < 0 or self.seconds < 0:
            raise ValueError(
                f"Fault after_tokens={self.after_tokens!r}, seconds={self.seconds!r}: "
                "expected values >= 0"
            )


@dataclass
class Seen:
    """One chat completion request as the server saw it; the handler fills it in as it goes."""

    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    ended: float | None = None
    tokens_sent: int = 0
    client_closed: bool = False
    status: int = 200
    fault: Fault | None = None


#: ``on_token(seen, index, sent)``: token ``index`` of the request ``seen`` was written at
#: ``sent`` (``time.monotonic()`` just before the write).
OnToken = Callable[[Seen, int, float], None]


def reply_for(messages: list[dict[str, Any]]) -> str:
    """The server's answer: ``Echo: `` and the last user message, then numbered filler words.

    ``LEN=<n>`` in that message asks for exactly n filler tokens and no echo, so a benchmark can
    choose the stream's length.
    """
    prompt = _last_user_text(messages)
    wanted = _LEN.search(prompt)
    if wanted:
        return _filler(min(int(wanted.group(1)), _MAX_LEN))
    return f"Echo: {prompt} {_filler(FILLER_WORDS)}"


def split_tokens(text: str) -> list[str]:
    """The tokens the server streams for ``text``, one per chunk; they join back into it."""
    return _TOKEN.findall(text)


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A deterministic stand-in for the prompt's token count, for ``usage``."""
    chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return chars // 4 + 1


def _filler(count: int) -> str:
    return " ".join(f"token{i}" for i in range(1, count + 1))


def _text_of(content: Any) -> str:
    # Content is a string or, in the newer format, a list of typed parts.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


class FakeProvider:
    """An OpenAI-compatible Chat Completions server on a background thread.

    ``url`` is the ``base_url`` an OpenAI client takes; ``script`` queues faults for the next
    requests; ``requests`` records every chat completion request, in order. ``on_token``, if
    given, is called on the serving thread after each streamed token is written, so a benchmark
    can time the token's way from here to its client; it holds that stream up while it runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens_per_second: float = 200.0,
        api_key: str | None = None,
        on_token: OnToken | None = None,
    ) -> None:
        if not tokens_per_second > 0:
            raise ValueError(f"tokens_per_second={tokens_per_second!r}: expected a number > 0")
        self.tokens_per_second = tokens_per_second
        self.api_key = api_key
        self.on_token = on_token
        self.requests: list[Seen] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._server = Server((host, port), self)
        self.url = f"http://{host}:{self._server.server_port}/v1"

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return 1.0 / self.tokens_per_second

    def start(self) -> FakeProvider:
        """Serve in a daemon thread; returns self."""
        if self._thread is not None or self._stopped:
            raise RuntimeError(f"FakeProvider at {self.url} was already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": STOP_POLL},
            name=f"fake-provider {self.url}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end every answer in flight; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.hang_up_all()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, *faults: Fault) -> None:
        """Serve these faults to the next chat completion requests, one per request, in order."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # What the wire side (fake_wire) asks of the provider, request by request.

    def _begin(self, body: dict[str, Any], headers: dict[str, str]) -> Seen:
        """Record a chat completion request as it arrives."""
        seen = Seen(body=body, headers=headers, started=time.monotonic())
        with self._lock:
            self.requests.append(seen)
        return seen

    @staticmethod
    def _plan(body: dict[str, Any]) -> tuple[list[str], str]:
        """The tokens to send and the finish reason, after ``max_tokens`` has had its say."""
        tokens = split_tokens(reply_for(body["messages"]))
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(cap, int) and not isinstance(cap, bool) and 0 <= cap < len(tokens):
            return tokens[:cap], "length"
        return tokens, "stop"

    @staticmethod
    def _usage(body: dict[str, Any], completion: int) -> dict[str, int]:
        prompt = prompt_tokens(body["messages"])
        total = prompt + completion
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C: ``python -m jobcast.llm.fake_provider --port 8099``."""
    parser = argparse.ArgumentParser(
        prog="python -m jobcast.llm.fake_provider",
        description="A local OpenAI-compatible Chat Completions server with canned answers.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--tokens-per-second", type=float, default=200.0)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer <key>'")
    args = parser.parse_args(argv)
    provider = FakeProvider(
        host=args.host,
        port=args.port,
        tokens_per_second=args.tokens_per_second,
        api_key=args.api_key,
    )
    with provider:
        print(f"Fake OpenAI-compatible provider at {provider.url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
