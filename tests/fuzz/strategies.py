"""Hypothesis strategies for hostile input: JSON nested past the parser's depth, and text no
well-behaved client sends (NUL and other controls, lone UTF-16 surrogates, separators, very
long strings). Shared by ``tests/unit/test_bad_input.py``, ``tests/integration/test_bad_input.py``
and ``tests/unit/test_params_properties.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

#: What ``jobcast.service.auth.views`` refuses in an email: C0 and C1 controls, DEL, line and
#: paragraph separators, UTF-16 surrogates.
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

#: Single characters that have broken servers: NUL, controls, lone surrogates of both halves,
#: separators, a BOM, bidi overrides, the last code point, a combining mark, an emoji.
ODD_CHARACTERS = [
    "\x00",
    "\x01",
    "\t",
    "\n",
    "\r",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\x9f",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\u202e",
    "\ufffe",
    "\uffff",
    "\U0010ffff",
    "\u0301",
    "\U0001f600",
    "\u0661",
]

_ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # surrogates included

#: Text with odd characters mixed into something that looks like an email, or anything at all,
#: or very long.
ODD_TEXT: st.SearchStrategy[str] = st.one_of(
    st.lists(
        st.one_of(st.sampled_from(ODD_CHARACTERS), _ANY_CHARACTER), min_size=1, max_size=6
    ).flatmap(
        lambda chars: st.sampled_from(
            [
                "".join(chars),
                "".join(chars) + "@example.com",
                "user" + "".join(chars) + "@example.com",
                "user@exa" + "".join(chars) + "mple.com",
            ]
        )
    ),
    st.text(_ANY_CHARACTER, max_size=40),
    st.integers(min_value=300, max_value=200_000).map(lambda n: "a" * n),
)

#: Depths around the parser's limit (the recursion limit, 1,000 frames) and far past it.
DEPTHS = st.one_of(
    st.sampled_from([1, 2, 64, 500, 900, 990, 999, 1_000, 1_001, 1_100, 5_000, 50_000]),
    st.integers(min_value=1, max_value=60_000),
)


def nested(depth: int, *, inside: str = "1", kind: str = "array") -> str:
    """A JSON text: ``inside`` wrapped in ``depth`` arrays or objects."""
    if kind == "array":
        return "[" * depth + inside + "]" * depth
    return '{"a":' * depth + inside + "}" * depth


#: JSON texts nested to any depth, arrays or objects, alone or as a member's value.
DEEP_JSON: st.SearchStrategy[str] = st.builds(
    lambda depth, kind, member: (
        '{"%s": %s}' % (member, nested(depth, kind=kind))  # noqa: UP031
        if member
        else nested(depth, kind=kind)
    ),
    DEPTHS,
    st.sampled_from(["array", "object"]),
    st.sampled_from(["", "email", "password", "type", "params"]),
)


def odd_json(leaves: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """JSON values whose strings (values and keys) are odd text."""
    text = ODD_TEXT if leaves is None else leaves
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=6,
    )


def as_json(value: Any) -> str:
    """The JSON text of ``value``, lone surrogates written as escapes as a client would."""
    return json.dumps(value, ensure_ascii=True)
