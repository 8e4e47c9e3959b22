"""The reference for ``bench llm``: the guides' direct pattern, a Flask route that opens the
provider's stream with the openai SDK and passes each delta on as one SSE event at once, with no
job, no worker and no Redis. ``gunicorn bench.llm_direct:app`` with ``BENCH_LLM_BASE_URL`` set to
the provider's ``base_url``; the bench serves it under the same worker class as ``jobcast web``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import openai
from flask import Flask, Response, request, stream_with_context

app = Flask("bench-llm-direct")
client = openai.OpenAI(
    base_url=os.environ.get("BENCH_LLM_BASE_URL", "http://127.0.0.1:8099/v1"),
    api_key="none",
    max_retries=0,
)


@app.get("/stream")
def stream() -> Response:
    """``?prompt=...&max_tokens=...``: one ``data:`` event per delta (a JSON string), then an
    ``end`` event, so a client can tell a finished answer from a cut one."""
    completion = client.chat.completions.create(
        model=os.environ.get("BENCH_LLM_MODEL", "fake-model"),
        messages=[{"role": "user", "content": request.args.get("prompt", "")}],
        max_tokens=request.args.get("max_tokens", 512, type=int),
        temperature=0,
        stream=True,
    )

    def events() -> Iterator[str]:
        with completion:
            for chunk in completion:
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        yield f"data: {json.dumps(choice.delta.content)}\n\n"
        yield "event: end\ndata: {}\n\n"

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
