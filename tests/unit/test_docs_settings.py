"""docs/configuration.md documents every setting, and only settings.

Each field of ``Settings`` is the environment variable ``JOBCAST_<FIELD>``; the page promises a
table row for each. A ``JOBCAST_`` name the page mentions must be a setting, or one of the few
variables named below that are read elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobcast.config import Settings

PAGE = Path(__file__).parents[2] / "docs" / "configuration.md"
#: Variables the page documents that are not Settings fields (read by tests/conftest.py).
NOT_SETTINGS = {"JOBCAST_TEST_REDIS_URL", "JOBCAST_TEST_DATABASE_URL"}

TEXT = PAGE.read_text(encoding="utf-8")
ROWS = set(re.findall(r"^\| `(JOBCAST_[A-Z0-9_]+)` \|", TEXT, flags=re.MULTILINE))
SETTINGS = sorted("JOBCAST_" + name.upper() for name in Settings.model_fields)


@pytest.mark.parametrize("variable", SETTINGS)
def test_every_setting_has_a_row(variable: str) -> None:
    assert variable in ROWS, f"{variable} (a Settings field) has no table row in {PAGE.name}"


def test_every_documented_variable_is_a_setting() -> None:
    mentioned = set(re.findall(r"\bJOBCAST_[A-Z0-9_]*[A-Z0-9]\b", TEXT))
    unknown = mentioned - set(SETTINGS) - NOT_SETTINGS
    assert not unknown, f"{PAGE.name} documents variables Settings does not have: {unknown}"
