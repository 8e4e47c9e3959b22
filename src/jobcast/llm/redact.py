"""Personal data and secrets taken out of text before it leaves the server for an LLM provider.

``redact`` replaces each finding with a marker naming its kind (``[email]``, ``[phone]``,
``[card]``, ``[iban]``, ``[secret]``) and counts them, so a job can log what was removed without
logging it. The rules lean towards leaving text alone: a number is only taken when its shape says
what it is and, for cards and IBANs, its checksum agrees; text without findings comes back
identical. An app with other needs passes its own ``Redactor``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["Counts", "Redactor", "redact"]

Counts = dict[str, int]
Redactor = Callable[[str], tuple[str, Counts]]

# A phone never starts or ends inside a longer number, so a date, a time or a version cannot lend
# it digits; a comma is let through, as lists of numbers are written with one.
_PHONE_START = r"(?<![\w+])(?<!\d[ .:-])"
_PHONE_END = r"(?!\w|[ .:-]\d)"

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[^\W_][\w-]*\.)+[^\W\d_]{2,}")
_SECRET = re.compile(r"(?<![\w-])(?:sk-[\w-]{20,}|AKIA[A-Z0-9]{16}(?!\w))", re.ASCII)
_IBAN = re.compile(
    r"(?<!\w)[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?!\w)",
    re.ASCII,
)
# Contiguous, or in groups as printed on cards (4-4-4-4, 4-6-5, 4-4-4-4-3), one separator kind.
# The Luhn check makes a loose edge safe: a card may sit next to its expiry or in a list.
_CARD = re.compile(
    r"(?<![\w+])(?:\d{13,19}|\d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{1,6}){1,3})(?!\w)", re.ASCII
)
# Where a card may not start: after a decimal point or thousands separator (the digits are the
# tail of another number), or after the head of an IBAN whose checksum failed.
_NOT_BEFORE_CARD = re.compile(
    r"(?:\d[.,:]|(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: [A-Z0-9]{4})* )\Z", re.ASCII
)
# "+" and a country code: the leading "+" is what makes a bare digit run safe to call a phone.
_INTL_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d)+(?!\w)",
    re.ASCII,
)
# National forms need their separators: North American (202) 555-0143 / 202-555-0143, and
# trunk-prefix numbers written in groups (020 7946 0958, 06 12 34 56 78).
_NATIONAL_PHONE = re.compile(
    _PHONE_START
    + r"(?:(?:1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    + r"|0\d{1,4}(?P<sep>[ .-])\d{2,8}(?:(?P=sep)\d{2,4}){0,3})"
    + _PHONE_END,
    re.ASCII,
)


def _digits(found: str) -> str:
    return "".join(ch for ch in found if ch.isdigit())


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _mod97_ok(iban: str) -> bool:
    """The ISO 13616 check: country and check digits moved to the end, letters as 10..35."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _card_length(found: str, before: str) -> int:
    if _NOT_BEFORE_CARD.search(before):
        return 0
    # Groups can run on into the number after a card ("4111 1111 1111 1111 12/26"), so trailing
    # groups are dropped while what is left is still long enough to be a card.
    while True:
        digits = _digits(found)
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            return len(found)
        cut = max(found.rfind(" "), found.rfind("-"))
        if cut < 0 or len(_digits(found[:cut])) < 13:
            return 0
        found = found[:cut]


def _iban_length(found: str, before: str) -> int:
    compact = found.replace(" ", "")
    if 15 <= len(compact) <= 34 and _mod97_ok(compact):
        return len(found)
    # A spaced IBAN can swallow a short word after it ("... 7034 EUR"); account numbers rarely end
    # in a group of letters, so that one reading is tried without it, and no shorter ones.
    head, _, tail = found.rpartition(" ")
    if head and tail.isalpha():
        return _iban_length(head, before)
    return 0


def _intl_phone_length(found: str, before: str) -> int:
    return len(found) if 8 <= len(_digits(found)) <= 15 else 0


def _national_phone_length(found: str, before: str) -> int:
    return len(found) if 9 <= len(_digits(found)) <= 11 else 0


def _whole(found: str, before: str) -> int:
    return len(found)


Check = Callable[[str, str], int]
_CONTEXT = 48  # of the text before a candidate: enough for the head of a spaced IBAN

# Each rule's check says how much of a candidate is a real finding (0: none), given the text before
# it as it will read (a finding made just before shows as its marker). Order matters: emails and
# secrets first since they may hold digits; IBANs before cards, whose digits they contain; cards
# before phones, whose looser shapes would take a card's groups.
_RULES: tuple[tuple[str, re.Pattern[str], Check], ...] = (
    ("email", _EMAIL, _whole),
    ("secret", _SECRET, _whole),
    ("iban", _IBAN, _iban_length),
    ("card", _CARD, _card_length),
    ("phone", _INTL_PHONE, _intl_phone_length),
    ("phone", _NATIONAL_PHONE, _national_phone_length),
)


def _apply(kind: str, pattern: re.Pattern[str], check: Check, text: str, counts: Counts) -> str:
    marker = f"[{kind}]"
    out: list[str] = []
    done = 0  # text[:done] is in out
    tail = ""  # the last characters of out
    match = pattern.search(text)
    while match:
        start = match.start()
        before = (tail + text[max(done, start - _CONTEXT) : start])[-_CONTEXT:]
        length = check(match.group(), before)
        if not length:
            match = pattern.search(text, match.end())
            continue
        out += [text[done:start], marker]
        done = start + length
        tail = (before + marker)[-_CONTEXT:]
        counts[kind] = counts.get(kind, 0) + 1
        # What a finding left over (a word after an IBAN, an expiry) is searched again.
        match = pattern.search(text, done)
    out.append(text[done:])
    return "".join(out)


def redact(text: str) -> tuple[str, Counts]:
    """``text`` with each finding replaced by a marker like ``"[email]"``, and how many of each
    kind were found (kinds not found are absent)."""
    counts: Counts = {}
    # A rule that runs later can uncover a finding for one that ran earlier (a card right after
    # "+49 30 1234567," looks like the tail of a number until the phone is a marker), so passes
    # repeat until one finds nothing: markers never match a rule, so this ends, and the result is
    # one that a second call leaves alone.
    while True:
        before = sum(counts.values())
        for kind, pattern, check in _RULES:
            text = _apply(kind, pattern, check, text, counts)
        if sum(counts.values()) == before:
            return text, counts
