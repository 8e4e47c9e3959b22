"""The submit rate limit (``JOBCAST_LIMIT_SUBMIT_USER``): per owner, counted in Redis, so every
web process shares it.

Built on ``limits`` (the library under Flask-Limiter) rather than Flask-Limiter itself, whose
``init_app`` would set config keys and hooks on every route of a host app: this limit applies
to jobcast's submit and nothing else.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from jobcast.errors import TooManyRequests

_PREFIX = "jobcast:limits:submit"


class SubmitLimit:
    def __init__(self, storage_url: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def hit(self, rule: str, owner: str) -> dict[str, str]:
        """Count one submission of ``owner`` against ``rule`` ("120/minute;1000/hour"); the
        ``X-RateLimit-*`` headers of the tightest limit, or TooManyRequests when one is spent."""
        items = self._parsed.get(rule)
        if items is None:
            items = self._parsed[rule] = parse_many(rule)
        tightest: tuple[int, RateLimitItem, float] | None = None
        for item in items:
            allowed = self._limiter.hit(item, _PREFIX, owner)
            reset, remaining = self._limiter.get_window_stats(item, _PREFIX, owner)
            if not allowed:
                raise TooManyRequests(
                    f"rate limit exceeded ({item}); retry after the Retry-After delay",
                    retry_after=max(1, math.ceil(reset - time.time())),
                )
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, item, reset)
        if tightest is None:
            return {}
        remaining, item, reset = tightest
        return {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
