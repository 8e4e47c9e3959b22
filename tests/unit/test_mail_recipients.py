"""email.send is no open relay: without configuration, users can only mail themselves."""

from __future__ import annotations

import pytest

from jobcast.service.builtin.mailer import recipient_allowed


@pytest.mark.parametrize(
    ("recipient", "allowed", "ok"),
    [
        ("Me@Example.com", "", True),
        ("someone@example.com", "", False),
        ("someone@example.com", "example.com", True),
        ("someone@example.com.evil.org", "example.com", False),
        ("someone@sub.example.com", "example.com", False),
        ("anyone@anywhere.net", "*", True),
        ("someone@corp.test", "example.com, @corp.test", True),
    ],
)
def test_recipients(recipient: str, allowed: str, ok: bool) -> None:
    assert recipient_allowed(recipient, "me@example.com", allowed) is ok
