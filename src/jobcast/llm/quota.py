"""Each user's LLM allowance: tokens per UTC day, cost per UTC month, LLM jobs at once.

Tokens and cost are counters in Redis, one per user and day (month), charged as a run streams
(so two runs of one user see each other) and settled to the provider's own usage at the end.
A submit is refused when the prompt plus its ``max_tokens`` would pass what is left; a run that
passes it anyway (several at once) stops mid-stream. Jobs at once are counted from the job
table (queued, running or retrying), so a lost worker leaves no slot taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from sqlalchemy import func, select

from jobcast.db.database import db
from jobcast.db.tables import Job
from jobcast.errors import QuotaExceeded
from jobcast.jobs import states
from jobcast.llm.settings import LLMSettings, Price

#: The job types that count as LLM jobs (the built-in ones; a host's own may add theirs).
LLM_TYPES = frozenset({"llm.chat", "llm.summarize"})
_DAY = 2 * 86_400
_MONTH = 32 * 86_400


def estimate_tokens(text: str) -> int:
    """A provider-independent estimate: about four characters a token."""
    return math.ceil(len(text) / 4)


def cost_of(prices: dict[str, Price], model: str, prompt: int, completion: int) -> float | None:
    """Estimated cost of a run, or None when the model has no price."""
    price = prices.get(model)
    if price is None:
        return None
    return round(prompt / 1000 * price[0] + completion / 1000 * price[1], 8)


@dataclass(frozen=True)
class Usage:
    """One user's use now, and the limits (0: none)."""

    tokens_today: int
    cost_this_month: float
    active_jobs: int
    daily_tokens: int
    monthly_budget: float
    max_concurrent: int

    def as_dict(self) -> dict[str, object]:
        def remaining(limit: float, used: float) -> float | None:
            return None if not limit else max(0.0, limit - used)

        return {
            "tokens_today": {
                "used": self.tokens_today,
                "limit": self.daily_tokens or None,
                "remaining": remaining(self.daily_tokens, self.tokens_today),
            },
            "cost_this_month": {
                "used": round(self.cost_this_month, 6),
                "limit": self.monthly_budget or None,
                "remaining": remaining(self.monthly_budget, self.cost_this_month),
            },
            "active_jobs": {
                "used": self.active_jobs,
                "limit": self.max_concurrent or None,
                "remaining": remaining(self.max_concurrent, self.active_jobs),
            },
        }


class Ledger:
    """The counters of one user."""

    def __init__(self, redis: Redis, owner_id: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.redis = redis
        self.tokens_key = f"jobcast:llm:tokens:{owner_id}:{now:%Y%m%d}"
        self.cost_key = f"jobcast:llm:cost:{owner_id}:{now:%Y%m}"

    def tokens(self) -> int:
        found: bytes | None = self.redis.get(self.tokens_key)  # type: ignore[assignment]
        return int(found or 0)

    def cost(self) -> float:
        found: bytes | None = self.redis.get(self.cost_key)  # type: ignore[assignment]
        return float(found or 0)

    def charge(self, tokens: int, cost: float | None) -> tuple[int, float]:
        """Add to the counters; returns the totals after."""
        pipe = self.redis.pipeline()
        pipe.incrby(self.tokens_key, tokens)
        pipe.expire(self.tokens_key, _DAY)
        pipe.incrbyfloat(self.cost_key, cost or 0.0)
        pipe.expire(self.cost_key, _MONTH)
        total, _, spent, _ = pipe.execute()
        return int(total), float(spent)


def usage(settings: LLMSettings, redis: Redis, owner_id: str) -> Usage:
    ledger = Ledger(redis, owner_id)
    return Usage(
        tokens_today=ledger.tokens(),
        cost_this_month=ledger.cost(),
        active_jobs=active_llm_jobs(owner_id),
        daily_tokens=settings.llm_daily_tokens,
        monthly_budget=settings.llm_monthly_budget,
        max_concurrent=settings.llm_max_concurrent,
    )


def active_llm_jobs(owner_id: str) -> int:
    query = select(func.count()).where(
        Job.owner_id == owner_id, Job.type.in_(LLM_TYPES), Job.status.in_(states.ACTIVE)
    )
    return int(db.session.scalar(query) or 0)


def admit(
    settings: LLMSettings, redis: Redis, owner_id: str, model: str, prompt: int, max_tokens: int
) -> None:
    """Refuse (429 llm-quota) a run that would pass one of the owner's limits."""
    now = usage(settings, redis, owner_id)
    if settings.llm_max_concurrent and now.active_jobs >= settings.llm_max_concurrent:
        raise QuotaExceeded(
            f"at most {settings.llm_max_concurrent} LLM jobs at once; wait for one to finish",
            limit=settings.llm_max_concurrent,
            used=now.active_jobs,
            remaining=0,
            retry_after=5,
        )
    wanted = prompt + max_tokens
    limit = settings.llm_daily_tokens
    if limit and now.tokens_today + wanted > limit:
        raise QuotaExceeded(
            f"this run may take {wanted} tokens (the prompt plus max_tokens) and"
            f" {max(0, limit - now.tokens_today)} of today's {limit} are left",
            limit=limit,
            used=now.tokens_today,
            remaining=max(0, limit - now.tokens_today),
            retry_after=_seconds_to_midnight(),
        )
    budget = settings.llm_monthly_budget
    cost = cost_of(settings.llm_price_table, model, prompt, max_tokens)
    if budget and cost is not None and now.cost_this_month + cost > budget:
        raise QuotaExceeded(
            f"this run may cost {cost:g} and {max(0.0, budget - now.cost_this_month):g} of"
            f" this month's budget of {budget:g} is left",
            limit=budget,
            used=round(now.cost_this_month, 6),
            remaining=max(0.0, round(budget - now.cost_this_month, 6)),
            retry_after=_seconds_to_next_month(),
        )


def _seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    return max(1, 86_400 - (now.hour * 3600 + now.minute * 60 + now.second))


def _seconds_to_next_month() -> int:
    now = datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, int((first - now).total_seconds()))
