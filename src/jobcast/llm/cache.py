"""Answers kept in Redis: an identical request (same model, redacted messages and parameters)
is answered again without the provider, and costs no quota.

The key is a hash of the redacted request, so what Redis holds about a request is never the
user's clear text, and it includes the owner unless the scope is ``shared``. Only requests
with temperature 0 are kept unless ``JOBCAST_LLM_CACHE_ANY_TEMPERATURE`` says otherwise: a
sampled answer is not the answer to give again.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from redis import Redis

from jobcast.llm.settings import LLMSettings


def cache_key(settings: LLMSettings, owner_id: str, request: dict[str, Any]) -> str | None:
    """The request's key, or None when it is not to be cached."""
    if not settings.llm_cache_ttl_seconds:
        return None
    if request.get("temperature", 0) != 0 and not settings.llm_cache_any_temperature:
        return None
    scope = "shared" if settings.llm_cache_scope == "shared" else f"user:{owner_id}"
    digest = hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"jobcast:llm:cache:{scope}:{digest}"


def lookup(redis: Redis, key: str) -> dict[str, Any] | None:
    """The answer kept under ``key``: {text, usage, model}."""
    found: bytes | None = redis.get(key)  # type: ignore[assignment]
    if found is None:
        return None
    answer: dict[str, Any] = orjson.loads(found)
    return answer


def keep(redis: Redis, key: str, ttl: int, answer: dict[str, Any]) -> None:
    redis.set(key, orjson.dumps(answer), ex=ttl)
