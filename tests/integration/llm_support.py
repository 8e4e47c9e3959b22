"""What the LLM tests share: reading a job's output back from its events, over either transport."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import requests

Event = tuple[str, dict[str, Any]]


def unique(text: str = "Tell me something") -> str:
    """A prompt no other test sends: the cache must not answer it."""
    return f"{text} ({uuid.uuid4().hex[:8]})"


def joined_output(events: list[Event]) -> str:
    """The output the job.output events make, as a client builds it: each piece at its index,
    a restart dropping what came before."""
    text = ""
    for name, payload in events:
        if name != "job.output":
            continue
        if payload.get("restart"):
            text = ""
        assert payload["index"] == len(text), (payload["index"], len(text))
        text += payload["text"]
    return text


def sse_events(response: requests.Response) -> Iterator[tuple[str, Event]]:
    """(event id, (name, payload)) of an SSE response, as they arrive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "event" in fields:
                yield fields["id"], (fields["event"], json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
