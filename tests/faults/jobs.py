"""Job types that exist only for the fault tests."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from jobcast import JobContext, job


class OnceParams(BaseModel):
    steps: int = Field(50, ge=1, le=1000)
    step_ms: int = Field(100, ge=0, le=10_000)


@job("faults.once", params=OnceParams, retry_lost=False)
def once(ctx: JobContext[OnceParams]) -> dict[str, int]:
    """A slow loop that must not run twice (as if each step charged a card)."""
    for n in range(1, ctx.params.steps + 1):
        time.sleep(ctx.params.step_ms / 1000)
        ctx.progress(100 * n / ctx.params.steps, f"step {n}")
    return {"steps": ctx.params.steps}
