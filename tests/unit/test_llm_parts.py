"""The LLM toolkit's pure parts: settings, prices, cache keys, what a provider's error means."""

from __future__ import annotations

import email.utils
import time

import httpx
import openai
import pytest

from jobcast.config import load_settings
from jobcast.errors import ConfigError
from jobcast.llm.cache import cache_key
from jobcast.llm.client import fault_of, retry_after, scrub
from jobcast.llm.quota import cost_of, estimate_tokens

KEY = "sk-abcdefghijklmnopqrstuvwx"


def test_the_allow_list_defaults_to_the_default_model() -> None:
    assert load_settings({"llm_model": "m1"}).llm_allowed_models == ("m1",)
    given = load_settings({"llm_model": "b", "llm_models": " a, b ,a"})
    assert given.llm_allowed_models == ("a", "b")


def test_an_allow_list_without_the_default_model_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"JOBCAST_LLM_MODEL \(c\) must be one of"):
        load_settings({"llm_model": "c", "llm_models": "a,b"})


def test_prices_are_model_equals_input_slash_output_per_thousand_tokens() -> None:
    settings = load_settings({"llm_prices": "a=0.5/1.5, b=0/0"})
    assert settings.llm_price_table == {"a": (0.5, 1.5), "b": (0.0, 0.0)}
    assert cost_of(settings.llm_price_table, "a", 2000, 1000) == pytest.approx(2.5)
    assert cost_of(settings.llm_price_table, "unpriced", 2000, 1000) is None


@pytest.mark.parametrize("prices", ["a", "a=1", "=1/2", "a=x/1", "a=-1/1", "a=nan/1", "a=1/inf"])
def test_a_bad_price_table_stops_start_up_naming_the_entry(prices: str) -> None:
    with pytest.raises(ConfigError, match="JOBCAST_LLM_PRICES"):
        load_settings({"llm_prices": prices})


def test_the_api_key_is_never_shown_in_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"llm_api_key": ["sk-secret-value"]})
    assert "sk-secret-value" not in str(raised.value)


def test_cache_keys_follow_scope_and_temperature() -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    user = load_settings({})
    assert cache_key(user, "1", request) != cache_key(user, "2", request)
    shared = load_settings({"llm_cache_scope": "shared"})
    assert cache_key(shared, "1", request) == cache_key(shared, "2", request)
    assert cache_key(user, "1", {**request, "temperature": 0.5}) is None
    hot = load_settings({"llm_cache_any_temperature": True})
    assert cache_key(hot, "1", {**request, "temperature": 0.5}) is not None
    assert cache_key(load_settings({"llm_cache_ttl_seconds": 0}), "1", request) is None
    assert "hi" not in (cache_key(user, "1", request) or "")


def test_a_token_estimate_is_about_four_characters() -> None:
    assert (
        estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    )


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) is None and retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after(later) or 0) <= 31


def _status_error(status: int, message: str, headers: dict[str, str] | None = None) -> Exception:
    request = httpx.Request("POST", "http://provider/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    body = {"error": {"message": message}}
    return openai.APIStatusError(message, response=response, body=body)


@pytest.mark.parametrize(
    ("status", "retriable"),
    [(400, False), (401, False), (404, False), (408, True), (429, True), (500, True), (503, True)],
)
def test_which_statuses_are_worth_another_try(status: int, retriable: bool) -> None:
    fault = fault_of(_status_error(status, "no"), KEY)
    assert fault.retriable is retriable
    assert f"HTTP {status}" in str(fault)


def test_a_providers_error_is_scrubbed_of_the_key_and_keeps_its_retry_after() -> None:
    fault = fault_of(_status_error(429, f"slow down, {KEY}", {"Retry-After": "2"}), KEY)
    assert KEY not in str(fault) and fault.retry_after == 2.0
    other = fault_of(_status_error(401, "Incorrect API key provided: sk-abc***wxyz."), KEY)
    assert "sk-abc" not in str(other)


def test_scrub_hides_the_key_and_anything_shaped_like_one() -> None:
    assert scrub(f"key={KEY} and AKIAABCDEFGHIJKLMNOP", KEY) == "key=*** and ***"
