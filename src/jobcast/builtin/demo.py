"""``demo.steps``: the classic "long running task" loop, used by the tests and benchmarks."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import job


class StepsParams(BaseModel):
    model_config = {"extra": "forbid"}

    steps: int = Field(10, ge=1, le=10_000, description="How many steps to run.")
    step_ms: int = Field(100, ge=0, le=60_000, description="Milliseconds each step sleeps.")


@job("demo.steps", params=StepsParams, title="Demo: a loop of timed steps", bound="io")
def steps(ctx: JobContext[StepsParams]) -> dict[str, int]:
    """Sleep ``steps`` times, reporting progress after each step."""
    params = ctx.params
    for done in range(1, params.steps + 1):
        time.sleep(params.step_ms / 1000)
        ctx.progress(100 * done / params.steps, f"step {done} of {params.steps}")
    return {"steps": params.steps}
