"""The built-in LLM job types, ``llm.chat`` and ``llm.summarize``: run by an app whose
``JOBCAST_LLM_BASE_URL`` is set (the service's default job modules import this module; a host
app imports it, or names it in ``JOBCAST_JOB_MODULES``).

What the params cannot say alone is checked at submit, inside the request: the model is on the
allow-list, the input within ``JOBCAST_LLM_MAX_INPUT_CHARS``, ``max_tokens`` within
``JOBCAST_LLM_MAX_OUTPUT_TOKENS``, and the owner's allowance not passed (a 429 ``llm-quota``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from jobcast.errors import ParamsRefused
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import job
from jobcast.llm import quota
from jobcast.llm.chat import complete
from jobcast.llm.client import ChatRequest
from jobcast.llm.settings import LLMSettings
from jobcast.runtime import current_runtime

SUMMARY_INSTRUCTION = (
    "Summarise the user's text. Keep its facts and its language; say nothing about yourself."
)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _absent(description: str) -> Any:
    """A member that may be left out but is never null (not nullable in the schema)."""
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class ChatParams(BaseModel):
    """Exactly one of ``prompt`` or ``messages``."""

    # The schema says "exactly one" too: oneOf holds only when one of the two is present.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["prompt"]}, {"required": ["messages"]}]},
    )

    prompt: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = _absent(
        "One user message."
    )
    messages: (
        Annotated[list[Message], Field(min_length=1, max_length=200)] | SkipJsonSchema[None]
    ) = _absent("The conversation, oldest first.")
    model: str | SkipJsonSchema[None] = _absent("One of the server's models; its default if unset.")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(
        512, ge=1, le=1_000_000, description="At most JOBCAST_LLM_MAX_OUTPUT_TOKENS."
    )

    @model_validator(mode="after")
    def _one_input(self) -> ChatParams:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        return self

    def chat_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


class SummarizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="At most JOBCAST_LLM_MAX_INPUT_CHARS characters.")
    max_tokens: int = Field(
        256, ge=1, le=1_000_000, description="At most JOBCAST_LLM_MAX_OUTPUT_TOKENS."
    )

    def chat_messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": SUMMARY_INSTRUCTION},
            {"role": "user", "content": self.text},
        ]


def provider_set(settings: Any) -> bool:
    return bool(getattr(settings, "llm_base_url", ""))


def _request(settings: LLMSettings, params: ChatParams | SummarizeParams) -> ChatRequest:
    """The request ``params`` make, or ParamsRefused naming the field the server will not take."""
    model = getattr(params, "model", None) or settings.llm_model
    if model not in settings.llm_allowed_models:
        allowed = ", ".join(settings.llm_allowed_models)
        raise ParamsRefused(f"model {model!r} is not one of {allowed}", field="model")
    if params.max_tokens > settings.llm_max_output_tokens:
        raise ParamsRefused(
            f"max_tokens is at most {settings.llm_max_output_tokens}", field="max_tokens"
        )
    messages = params.chat_messages()
    # What the user sent: the summary's instruction is the server's, not counted.
    size = (
        len(params.text)
        if isinstance(params, SummarizeParams)
        else sum(len(m["content"]) for m in messages)
    )
    if size > settings.llm_max_input_chars:
        field = "text" if isinstance(params, SummarizeParams) else None
        raise ParamsRefused(
            f"the input has {size} characters; at most {settings.llm_max_input_chars}",
            field=field,
        )
    temperature = getattr(params, "temperature", 0.0)
    return ChatRequest(model, messages, temperature, params.max_tokens)


def _check(params: ChatParams | SummarizeParams, owner_id: str) -> None:
    rt = current_runtime()
    request = _request(rt.settings, params)
    prompt = sum(quota.estimate_tokens(m["content"]) for m in request.messages)
    quota.admit(rt.settings, rt.redis, owner_id, request.model, prompt, request.max_tokens)


def _run(ctx: JobContext[Any]) -> dict[str, Any]:
    return complete(ctx, _request(current_runtime().settings, ctx.params))


_POLICY: dict[str, Any] = {
    "time_limit": 900.0,
    "max_retries": 2,
    "retry_backoff": 1.0,
    "retry_backoff_max": 30.0,
    "enabled": provider_set,
}


@job("llm.chat", params=ChatParams, check=_check, **_POLICY)
def chat(ctx: JobContext[ChatParams]) -> dict[str, Any]:
    """Chat with a model"""
    return _run(ctx)


@job("llm.summarize", params=SummarizeParams, check=_check, **_POLICY)
def summarize(ctx: JobContext[SummarizeParams]) -> dict[str, Any]:
    """Summarise a text"""
    return _run(ctx)
