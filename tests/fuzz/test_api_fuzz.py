"""schemathesis against the running app, from the OpenAPI document it publishes.

Runs only with ``JOBCAST_FUZZ=1`` (``scripts/fuzz-api.sh``; CI runs it after the test suite).
A stack of its own (web server, workers, Redis, SQLite) takes the requests: every operation is
called with generated valid and invalid input in each schemathesis phase (coverage, fuzzing,
and stateful sequences along the document's links), within a time budget, and every answer is
checked: no 5xx, status codes, content types, headers and bodies as documented, invalid input
refused, auth enforced. Logout, which would revoke the token the rest uses, runs apart with a
token of its own. Reports go to ``test-artifacts/fuzz/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobcast.service.testing import LocalStack

pytestmark = pytest.mark.skipif(
    os.environ.get("JOBCAST_FUZZ") != "1", reason="fuzzing runs with JOBCAST_FUZZ=1"
)

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
REPORTS = ROOT / "test-artifacts" / "fuzz"
PASSWORD = "fuzzing password"
#: Seconds schemathesis may spend on the main run (it stops generating when they are spent).
BUDGET = int(os.environ.get("JOBCAST_FUZZ_SECONDS", "150"))
#: The budget plus starting the stack, the last requests and writing the report.
LIMIT = BUDGET + 240


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    overrides = {
        "JOBCAST_JOB_MODULES": "jobcast.service.builtin",
        # Generated submissions pile up unfinished jobs; the cap is not what is under test.
        "JOBCAST_MAX_ACTIVE_JOBS": "100000",
        "JOBCAST_SSE_KEEPALIVE_SECONDS": "1",
    }
    with LocalStack(tmp_path_factory.mktemp("fuzz"), env_overrides=overrides) as running:
        yield running


def sign_in(base_url: str, email: str) -> dict[str, str]:
    response = requests.post(
        f"{base_url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    tokens: dict[str, str] = response.json()
    return tokens


@pytest.fixture(scope="module")
def email(stack: LocalStack) -> str:
    address = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    requests.post(
        f"{stack.base_url}/api/v1/auth/register",
        json={"email": address, "password": PASSWORD},
        timeout=30,
    ).raise_for_status()
    return address


def schemathesis(stack: LocalStack, email: str, name: str, *options: str) -> None:
    """Run schemathesis with fresh sign-ins; fail with its report when it finds anything."""
    env = {
        **os.environ,
        "JOBCAST_FUZZ_ACCESS_TOKEN": sign_in(stack.base_url, email)["access_token"],
        "JOBCAST_FUZZ_REFRESH_TOKEN": sign_in(stack.base_url, email)["refresh_token"],
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{stack.base_url}/api/v1/openapi.json",
        "--report",
        "junit",
        "--report-junit-path",
        str(REPORTS / f"{name}.xml"),
        *options,
    ]
    done = subprocess.run(argv, env=env, cwd=REPORTS, capture_output=True, text=True, timeout=LIMIT)
    (REPORTS / f"{name}.txt").write_text(done.stdout + done.stderr)
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]


@pytest.mark.timeout(LIMIT)
def test_the_api_holds_its_contract_under_fuzzing(stack: LocalStack, email: str) -> None:
    schemathesis(
        stack,
        email,
        "api",
        "--exclude-operation-id",
        "logout",
        "--max-time",
        str(BUDGET),
        "--max-examples",
        "100",
    )


@pytest.mark.timeout(LIMIT)
def test_logout_holds_its_contract_under_fuzzing(stack: LocalStack, email: str) -> None:
    schemathesis(
        stack,
        email,
        "logout",
        "--include-operation-id",
        "logout",
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        "20",
    )
