"""The ``JOBCAST_LLM_*`` settings: where the provider is, which models a user may ask for, and
each user's allowance. Part of ``jobcast.config.Settings`` (a mixin, so one model still reads
and validates every setting at start-up); lists are plain comma-separated strings.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

#: A price: cost per 1,000 input tokens and per 1,000 output tokens, in the budget's currency.
Price = tuple[float, float]


class LLMSettings(BaseModel):
    # An OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, Ollama): setting it
    # registers the built-in llm.* job types. The key never leaves the workers.
    llm_base_url: str = Field("", pattern=r"^$|^https?://[^\s]+$")
    llm_api_key: str = ""
    llm_model: str = Field("gpt-4o-mini", pattern=r"^[!-~]{1,200}$")
    llm_models: str = ""
    # Seconds to wait for the provider's next byte (and to connect).
    llm_timeout: float = Field(60, gt=0, le=3600)
    # Per user: tokens per UTC day (prompt + completion), budget per calendar month (UTC, in the
    # prices' currency), LLM jobs at once. 0 = no limit.
    llm_daily_tokens: int = Field(200_000, ge=0)
    llm_monthly_budget: float = Field(0, ge=0, allow_inf_nan=False)
    llm_max_concurrent: int = Field(3, ge=0, le=10_000)
    # "model=input/output,..." per 1,000 tokens, e.g. "gpt-4o-mini=0.00015/0.0006".
    llm_prices: str = ""
    llm_cache_ttl_seconds: int = Field(86_400, ge=0)
    llm_cache_scope: Literal["user", "shared"] = "user"
    # Only deterministic requests (temperature 0) are answered from the cache unless this is on.
    llm_cache_any_temperature: bool = False
    llm_redact: bool = True
    llm_max_input_chars: int = Field(20_000, ge=1, le=10_000_000)
    llm_max_output_tokens: int = Field(4096, ge=1, le=1_000_000)

    @field_validator("llm_models")
    @classmethod
    def _model_names(cls, value: str) -> str:
        for name in _items(value):
            if not name.isascii() or not name.isprintable() or " " in name or len(name) > 200:
                raise ValueError(f"{name!r} is not a model name")
        return value

    @field_validator("llm_prices")
    @classmethod
    def _price_table(cls, value: str) -> str:
        parse_prices(value)
        return value

    @model_validator(mode="after")
    def _default_model_allowed(self) -> LLMSettings:
        if self.llm_models and self.llm_model not in self.llm_allowed_models:
            raise ValueError(
                f"JOBCAST_LLM_MODEL ({self.llm_model}) must be one of JOBCAST_LLM_MODELS"
                f" ({self.llm_models}): a request without a model gets the default"
            )
        return self

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url)

    @property
    def llm_allowed_models(self) -> tuple[str, ...]:
        """The allow-list: ``llm_models``, or the default model alone."""
        return tuple(dict.fromkeys(_items(self.llm_models) or [self.llm_model]))

    @property
    def llm_price_table(self) -> dict[str, Price]:
        return parse_prices(self.llm_prices)


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_prices(value: str) -> dict[str, Price]:
    """``model=input/output,...`` into {model: (input, output)}; ValueError naming the entry."""
    table: dict[str, Price] = {}
    for entry in _items(value):
        model, equals, price = entry.partition("=")
        given, slash, taken = price.partition("/")
        try:
            if not (equals and slash and model.strip()):
                raise ValueError
            pair = (float(given), float(taken))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not model=input/output (cost per 1,000 tokens each)"
            ) from None
        if not all(math.isfinite(p) and p >= 0 for p in pair):
            raise ValueError(f"{entry!r}: a price is a finite number, 0 or more")
        table[model.strip()] = pair
    return table
