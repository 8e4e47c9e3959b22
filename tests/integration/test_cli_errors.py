"""The real ``jobcast`` command answers a bad setting, a database it cannot open or reach and a
Redis that does not answer with a short message naming the setting: exit 1, no traceback unless
``--debug``. No server is needed: unreachable services are free local ports nobody listens on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobcast.service.procs import free_port

PASSWORD = ["--password", "a-long-enough-password"]


def jobcast(
    cwd: Path, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobcast ARGS`` in ``cwd`` with only the JOBCAST_* variables given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    return subprocess.run(
        [sys.executable, "-m", "jobcast", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_short_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit 1, at most three lines on stderr, no traceback, each of ``names`` mentioned."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    for name in names:
        assert name in result.stderr, result.stderr
    return result.stderr


def test_outside_the_project_folder_the_sqlite_database_is_explained(tmp_path: Path) -> None:
    """The new user's case: no instance/ folder here, so the default SQLite file cannot open."""
    result = jobcast(tmp_path, "users", "create", "new@example.com", *PASSWORD)
    assert_short_error(result, "JOBCAST_DATABASE_URL", "project folder", "sqlite:////")


def test_a_database_without_tables_says_to_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = jobcast(tmp_path, "demo", "seed", "--rows", "1", JOBCAST_DATABASE_URL=url)
    assert_short_error(result, "jobcast db upgrade")


@pytest.mark.parametrize(
    ("args", "url", "says"),
    [
        pytest.param(["db", "upgrade"], "nonsense://", "nonsense", id="unknown-dialect"),
        pytest.param(["users", "create", "a@example.com"], "not a url", "not a database URL",
                     id="not-a-url"),
        pytest.param(["worker"], "mysql://u@127.0.0.1/x", "driver is not installed",
                     id="driver-missing"),
    ],
)  # fmt: skip
def test_a_bad_database_url_is_refused_naming_the_setting(
    tmp_path: Path, args: list[str], url: str, says: str
) -> None:
    if args == ["worker"] and importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("MySQLdb is installed here")
    result = jobcast(tmp_path, *args, *(PASSWORD if args[0] == "users" else []),
                     JOBCAST_DATABASE_URL=url)  # fmt: skip
    stderr = assert_short_error(result, "JOBCAST_DATABASE_URL", says)
    assert "docs/configuration.md" in stderr


@pytest.mark.skipif(
    importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed here"
)
def test_a_missing_database_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    result = jobcast(
        tmp_path, "db", "upgrade", JOBCAST_DATABASE_URL="postgresql+psycopg2://u@127.0.0.1/x"
    )
    assert_short_error(result, "JOBCAST_DATABASE_URL", "pip install 'jobcast[postgres]'")


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is None, reason="needs psycopg")
def test_an_unreachable_postgresql_is_named_with_its_password_masked(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://jobcast:s3cret-pw@127.0.0.1:{free_port()}/jobcast"
    result = jobcast(tmp_path, "users", "create", "a@example.com", *PASSWORD,
                     JOBCAST_DATABASE_URL=url)  # fmt: skip
    stderr = assert_short_error(result, "JOBCAST_DATABASE_URL", "jobcast:***@127.0.0.1")
    assert "s3cret-pw" not in stderr


@pytest.mark.parametrize("command", ["worker", "web"])
def test_a_unix_socket_redis_url_stops_every_process_at_start(tmp_path: Path, command: str) -> None:
    result = jobcast(tmp_path, command, JOBCAST_REDIS_URL="unix:///tmp/redis.sock")
    assert_short_error(result, "JOBCAST_REDIS_URL", "unix:///tmp/redis.sock", "redis://")


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_broker_url_kombu_cannot_use_is_refused(tmp_path: Path, command: str) -> None:
    result = jobcast(tmp_path, command, JOBCAST_BROKER_URL="nosuch://broker:1/0")
    assert_short_error(result, "JOBCAST_BROKER_URL", "nosuch://broker:1/0")


def test_web_checks_redis_answers_before_serving(tmp_path: Path) -> None:
    result = jobcast(
        tmp_path,
        "web",
        "--port",
        str(free_port()),
        JOBCAST_REDIS_URL=f"redis://:hidden@127.0.0.1:{free_port()}/0",
        JOBCAST_DATABASE_URL=f"sqlite:///{tmp_path / 'jobcast.db'}",
    )
    stderr = assert_short_error(result, "JOBCAST_REDIS_URL", "start Redis")
    assert "hidden" not in stderr


def test_web_checks_the_database_opens_before_serving(tmp_path: Path) -> None:
    result = jobcast(
        tmp_path,
        "web",
        "--port",
        str(free_port()),
        JOBCAST_DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'jobcast.db'}",
        JOBCAST_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # checked after the database
    )
    assert_short_error(result, "JOBCAST_DATABASE_URL", "its folder must exist")


def test_production_refusal_is_one_message(tmp_path: Path) -> None:
    result = jobcast(tmp_path, "users", "create", "a@example.com", *PASSWORD,
                     JOBCAST_ENV="production")  # fmt: skip
    assert_short_error(result, "JOBCAST_SECRET_KEY")


@pytest.mark.parametrize(
    ("flag", "env"),
    [pytest.param(["--debug"], {}, id="--debug"), pytest.param([], {"JOBCAST_DEBUG": "true"},
                                                                 id="JOBCAST_DEBUG")],
)  # fmt: skip
def test_debug_shows_the_traceback(tmp_path: Path, flag: list[str], env: dict[str, str]) -> None:
    result = jobcast(tmp_path, *flag, "users", "create", "new@example.com", *PASSWORD, **env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "unable to open database file" in result.stderr


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    result = jobcast(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"jobcast, version {importlib.metadata.version('jobcast')}"


def test_help_names_where_the_settings_are_documented(tmp_path: Path) -> None:
    result = jobcast(tmp_path, "--help", JOBCAST_REDIS_URL="unix:///help/needs/no/settings")
    assert result.returncode == 0
    assert "docs/configuration.md" in result.stdout
    assert "--debug" in result.stdout
