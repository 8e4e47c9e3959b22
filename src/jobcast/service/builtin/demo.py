"""``demo.steps``: the classic "long running task" loop, used by the tests and benchmarks."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from jobcast.errors import ParamsRefused
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import job

TIME_LIMIT = 3600.0


class StepsParams(BaseModel):
    model_config = {"extra": "forbid"}

    steps: int = Field(10, ge=1, le=10_000, description="How many steps to run.")
    step_ms: int = Field(100, ge=0, le=60_000, description="Milliseconds each step sleeps.")


def check_duration(params: StepsParams, owner_id: str) -> None:
    """At submit: refuse a loop that would sleep past the time limit, sure to time out.

    A check rather than a params rule: the schema keeps the two bounds it publishes.
    """
    seconds = params.steps * params.step_ms / 1000
    if seconds >= TIME_LIMIT:
        raise ParamsRefused(
            f"{params.steps} steps of {params.step_ms} ms sleep {seconds:g} s, longer than the"
            f" job's time limit of {TIME_LIMIT:g} s",
            code="time_limit",
        )


@job(
    "demo.steps",
    params=StepsParams,
    title="Demo: a loop of timed steps",
    bound="io",
    time_limit=TIME_LIMIT,
    check=check_duration,
)
def steps(ctx: JobContext[StepsParams]) -> dict[str, int]:
    """Sleep ``steps`` times, reporting progress after each step."""
    params = ctx.params
    for done in range(1, params.steps + 1):
        time.sleep(params.step_ms / 1000)
        ctx.progress(100 * done / params.steps, f"step {done} of {params.steps}")
    return {"steps": params.steps}
