"""An app's own say in its LLM jobs: a redactor of its own (run after the built-in one, or
alone when ``JOBCAST_LLM_REDACT`` is off) and a moderator that can refuse a request or stop an
answer. Kept in ``app.extensions``, like every other piece of jobcast's per-app state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app

from jobcast.llm.redact import Redactor

#: ``moderator(stage, text)``: stage is "input" (the redacted request, before it is sent) or
#: "output" (the answer so far); returns why it must not go on, or None.
Moderator = Callable[[str, str], "str | None"]

_KEY = "jobcast.llm"


@dataclass(frozen=True)
class LLMHooks:
    redactor: Redactor | None = None
    moderator: Moderator | None = None


def configure(
    app: Flask, *, redactor: Redactor | None = None, moderator: Moderator | None = None
) -> None:
    """Give ``app``'s LLM jobs a redactor and/or a moderator (both off by default)."""
    app.extensions[_KEY] = LLMHooks(redactor=redactor, moderator=moderator)


def current_hooks() -> LLMHooks:
    found = current_app.extensions.get(_KEY)
    return found if isinstance(found, LLMHooks) else LLMHooks()
