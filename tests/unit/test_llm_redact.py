"""What the redaction step takes out of text bound for an LLM provider, and what it leaves alone.

Emails, phone numbers, card numbers, IBANs and API keys become markers and are counted; dates,
prices, versions and numbers that fail their checksum stay as they were, byte for byte.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobcast.llm.redact import redact

PROPERTIES = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("found", "kind"),
    [
        ("jane.doe@example.com", "email"),
        ("j.doe+invoices@mail.example.co.uk", "email"),
        ("+44 20 7946 0958", "phone"),
        ("+1-202-555-0143", "phone"),
        ("+33.1.23.45.67.89", "phone"),
        ("+4930123456", "phone"),
        ("+1 (202) 555-0143", "phone"),
        ("(202) 555-0143", "phone"),
        ("202-555-0143", "phone"),
        ("020 7946 0958", "phone"),
        ("06 12 34 56 78", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("5555-5555-5555-4444", "card"),
        ("6011111111111117", "card"),
        ("3782 822463 10005", "card"),
        ("GB82 WEST 1234 5698 7654 32", "iban"),
        ("DE89370400440532013000", "iban"),
        ("FR14 2004 1010 0505 0001 3M02 606", "iban"),
        ("NO9386011117947", "iban"),
        ("sk-proj-Xa1b2C3d4E5f6G7h8I9j0_kLmN-oPqR", "secret"),
        ("sk-" + "a1B2" * 12, "secret"),
        ("AKIAIOSFODNN7EXAMPLE", "secret"),
    ],
)
def test_each_kind_is_replaced_by_its_marker_and_counted(found: str, kind: str) -> None:
    text = f"Please use {found} for this.\n"
    assert redact(text) == (f"Please use [{kind}] for this.\n", {kind: 1})


@pytest.mark.parametrize(
    "text",
    [
        "We started in 2026.",
        "Order 12345 shipped.",
        "It costs 1,234.56 EUR, or 1.234,56 in Germany.",
        "Due on 2026-12-03, or 03.12.2026, or 12/03/2026.",
        "Meet at 14:30 or 09:15:30.",
        "Needs Python 3.11.7 on 10.0.0.1 or 192.168.100.200.",
        "Luhn says no: 4111 1111 1111 1112 and 4111111111111112.",
        "Checksum says no: GB82 WEST 1234 5698 7654 31 and DE89370400440532013001.",
        "Too short a key: sk-abc123, and a task-abcdefghijklmnopqrstuvwxyz is no key.",
        "Not an address: user@localhost, @handle, a @ b.",
        "Unicode stays: naïve café — “quoted” 😀\r\n\ttabs",
        "",
    ],
)
def test_text_without_findings_comes_back_identical(text: str) -> None:
    assert redact(text) == (text, {})


@pytest.mark.parametrize(
    ("text", "redacted", "counts"),
    [
        ("4111 1111 1111 1111 12/26", "[card] 12/26", {"card": 1}),
        ("BE68 5390 0754 7034 EUR", "[iban] EUR", {"iban": 1}),
        ("4111111111111111,5555555555554444", "[card],[card]", {"card": 2}),
        ("4111 1111 1111 1111 5555 5555 5555 4444", "[card] [card]", {"card": 2}),
        ("020 7946 0958,06 12 34 56 78", "[phone],[phone]", {"phone": 2}),
        ("+4930123456,4111111111111111", "[phone],[card]", {"phone": 1, "card": 1}),
        ("jane@example.com4111111111111111", "[email][card]", {"email": 1, "card": 1}),
        ("0.4111111111111111", "0.4111111111111111", {}),
        ("DE89 3704 0044 0532 0130 01", "DE89 3704 0044 0532 0130 01", {}),
    ],
)
def test_findings_next_to_each_other_or_to_other_numbers(
    text: str, redacted: str, counts: dict[str, int]
) -> None:
    """Neighbouring findings are each found; digits that belong to another number are not."""
    assert redact(text) == (redacted, counts)


def test_mixed_text_counts_every_finding_by_kind() -> None:
    text = (
        "From: ops@example.org, cc anna@example.com\n"
        "Call +44 20 7946 0958 or (202) 555-0143 before 2026-12-03.\n"
        "Card 4111-1111-1111-1111, IBAN DE89 3704 0044 0532 0130 00, total 1,234.56.\n"
        "Key sk-proj-abcdefghijklmnopqrstuvwxyz and AKIAIOSFODNN7EXAMPLE on 3.11.7."
    )
    assert redact(text) == (
        "From: [email], cc [email]\n"
        "Call [phone] or [phone] before 2026-12-03.\n"
        "Card [card], IBAN [iban], total 1,234.56.\n"
        "Key [secret] and [secret] on 3.11.7.",
        {"email": 2, "phone": 2, "card": 1, "iban": 1, "secret": 2},
    )


def luhn_completed(body: str) -> str:
    """``body`` with the check digit that makes it pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return body + str(-total % 10)


WORDS = st.lists(st.text(string.ascii_letters, min_size=1, max_size=10), max_size=5).map(" ".join)

# 16 digits, written as one run or in groups of four.
CARDS = st.builds(
    lambda number, sep: sep.join(number[i : i + 4] for i in range(0, 16, 4)),
    st.text(string.digits, min_size=15, max_size=15).map(luhn_completed),
    st.sampled_from(["", " ", "-"]),
)

# Secrets need digits, a "-" or "AKIA"; emails an "@".
PLAIN = st.text(
    st.characters(categories=["L", "Zs", "P"], exclude_characters="@-"), max_size=200
).filter(lambda text: "AKIA" not in text)


@PROPERTIES
@given(PLAIN)
def test_text_without_digits_or_at_signs_is_unchanged(text: str) -> None:
    assert redact(text) == (text, {})


@PROPERTIES
@given(WORDS, CARDS, WORDS)
def test_a_luhn_valid_card_among_words_is_always_replaced_once(
    before: str, card: str, after: str
) -> None:
    text = f"{before} {card} {after}"
    assert redact(text) == (f"{before} [card] {after}", {"card": 1})


PIECES = st.one_of(
    st.sampled_from(
        [
            "jane.doe@example.com",
            "+44 20 7946 0958",
            "202-555-0143",
            "06 12 34 56 78",
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "sk-proj-abcdefghijklmnopqrstuvwxyz",
            "AKIAIOSFODNN7EXAMPLE",
            "2026-12-03",
            "3.11.7",
            "1,234.56",
            "[card]",
        ]
    ),
    CARDS,
    st.text(string.ascii_letters + string.digits + " .,:;-+@()[]/\n", max_size=12),
)


@PROPERTIES
@given(st.lists(PIECES, max_size=8), st.sampled_from(["", " ", "-", ",", ".", "\n"]))
def test_redacting_twice_is_the_same_as_once(pieces: list[str], glue: str) -> None:
    once, _ = redact(glue.join(pieces))
    assert redact(once) == (once, {})
