"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcast.service.procs import free_port, redis_server_command, wait_for_port
from jobcast.service.testing import fresh_database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system Chromium under Playwright, one per run: Playwright's sync API runs an event
    loop of its own, so a second instance in the same run would fail."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs the system Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the tests' own: ``JOBCAST_TEST_REDIS_URL``, or a fresh server on a free port."""
    given = os.environ.get("JOBCAST_TEST_REDIS_URL")
    if given:
        yield given
        return
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        redis_server_command(port, directory, persist=False), stdout=subprocess.DEVNULL
    )
    try:
        wait_for_port("127.0.0.1", port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite in a temp dir, or a fresh PostgreSQL database when JOBCAST_TEST_DATABASE_URL is
    set (the URL of a server database we may create and drop databases from)."""
    admin_url = os.environ.get("JOBCAST_TEST_DATABASE_URL")
    if not admin_url:
        yield f"sqlite:///{Path(tmp_path_factory.mktemp('db')) / 'jobcast.db'}"
        return
    with fresh_database(admin_url, prefix="jobcast_test") as url:
        yield url
