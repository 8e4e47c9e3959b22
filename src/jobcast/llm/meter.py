"""A run's tokens and cost as they stream, charged to the owner's counters in steps so that
the owner's other runs see them, and settled to the provider's own usage at the end.
"""

from __future__ import annotations

from redis import Redis

from jobcast.errors import JobError
from jobcast.llm.quota import Ledger, cost_of
from jobcast.llm.settings import LLMSettings

#: Tokens streamed between two charges (and two looks at the limits).
_STEP = 16


class Meter:
    def __init__(
        self, settings: LLMSettings, redis: Redis, owner_id: str, model: str, prompt: int
    ) -> None:
        self.settings = settings
        self.prices = settings.llm_price_table  # parsed once, not at every charge
        self.ledger = Ledger(redis, owner_id)
        self.model = model
        self.prompt = prompt
        self.completion = 0
        self._charged = (0, 0)  # this try's (prompt, completion) tokens on the counters

    def begin(self) -> None:
        """A try starts: its prompt is charged up front, so concurrent runs see it."""
        self.completion = 0
        self._charged = (0, 0)
        self._charge(self.prompt, 0)

    def streamed(self, tokens: int) -> None:
        """Count streamed tokens; raises JobError (``quota``) once a limit is passed."""
        self.completion += tokens
        if self.completion - self._charged[1] >= _STEP:
            total, spent = self._charge(self.prompt, self.completion)
            self._check(total, spent)

    def settle(self, usage: dict[str, int] | None) -> dict[str, int]:
        """Charge what the try really used: the provider's figures where it sent them, else
        the estimate (nothing for a try refused before any text); returns the usage."""
        if usage is None:
            prompt = self.prompt if self.completion else 0
            usage = {"prompt_tokens": prompt, "completion_tokens": self.completion}
        self._charge(usage["prompt_tokens"], usage["completion_tokens"])
        return usage

    def _charge(self, prompt: int, completion: int) -> tuple[int, float]:
        before = self._charged
        tokens = prompt + completion - sum(before)
        cost = (cost_of(self.prices, self.model, prompt, completion) or 0.0) - (
            cost_of(self.prices, self.model, *before) or 0.0
        )
        self._charged = (prompt, completion)
        return self.ledger.charge(tokens, cost)

    def _check(self, total: int, spent: float) -> None:
        limit, budget = self.settings.llm_daily_tokens, self.settings.llm_monthly_budget
        if limit and total > limit:
            raise JobError(
                f"the daily allowance of {limit} tokens ran out during this run", code="quota"
            )
        if budget and spent > budget:
            raise JobError(
                f"this month's budget of {budget:g} ran out during this run", code="quota"
            )
