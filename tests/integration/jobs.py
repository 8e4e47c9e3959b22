"""Job types that exist only for the tests: failing, retrying, slow."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from jobcast import JobContext, JobError, TransientJobError, job


class FlakyParams(BaseModel):
    failures: int = Field(1, ge=0, le=5)


@job("test.flaky", params=FlakyParams, retry_backoff=0.2, max_retries=2)
def flaky(ctx: JobContext[FlakyParams]) -> dict[str, int]:
    """Fails with a transient error on its first ``failures`` attempts."""
    if ctx.attempt <= ctx.params.failures:
        raise TransientJobError(f"attempt {ctx.attempt} hit a transient error")
    return {"attempt": ctx.attempt}


@job("test.fail")
def fail(ctx: JobContext[BaseModel]) -> None:
    """Fails at once with a message for the user."""
    ctx.progress(10, "about to fail")
    raise JobError("the input is unusable", code="bad_input")


@job("test.crash")
def crash(ctx: JobContext[BaseModel]) -> None:
    """Raises an unexpected exception whose text must not reach the user."""
    raise RuntimeError("secret internal detail /etc/passwd SELECT * FROM users")


class SlowParams(BaseModel):
    seconds: float = Field(5, ge=0, le=600)


@job("test.slow", params=SlowParams, time_limit=2)
def slow(ctx: JobContext[SlowParams]) -> None:
    """Sleeps past its 2-second time limit."""
    time.sleep(ctx.params.seconds)


class FileParams(BaseModel):
    text: str = Field("hello", max_length=1000)


@job("test.file", params=FileParams)
def write_file(ctx: JobContext[FileParams]) -> dict[str, int]:
    """Writes ``text`` to a result file."""
    path = ctx.result_path("greeting.txt", "text/plain")
    path.write_text(ctx.params.text)
    return {"chars": len(ctx.params.text)}


class ChunkParams(BaseModel):
    chunks: int = Field(20, ge=1, le=1000)
    chunk_ms: int = Field(100, ge=0, le=10_000)


@job("test.chunks", params=ChunkParams, time_limit=60)
def write_chunks(ctx: JobContext[ChunkParams]) -> dict[str, int]:
    """Writes one line per chunk to its result file, slowly, reporting progress each time."""
    path = ctx.result_path("chunks.txt", "text/plain")
    with path.open("w") as out:
        for n in range(1, ctx.params.chunks + 1):
            time.sleep(ctx.params.chunk_ms / 1000)
            out.write(f"chunk {n} attempt {ctx.attempt}\n")
            out.flush()
            ctx.progress(100 * n / ctx.params.chunks, f"chunk {n}")
    return {"chunks": ctx.params.chunks}
