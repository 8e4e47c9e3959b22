"""``jobcast check`` asks each Redis jobcast uses whether it persists: one that would lose the
broker's messages and the event logs on a restart is a problem, one that will not say is a note."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobcast.service.cli import main
from jobcast.service.procs import free_port, redis_server_command, wait_for_port

SAFE = {
    "JOBCAST_SECRET_KEY": "s" * 32,
    "JOBCAST_JWT_SECRET_KEY": "j" * 32,
    "JOBCAST_ALLOW_SQLITE_IN_PRODUCTION": "true",
}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a private Redis: ``redis_server(persist, *extra_args)`` gives its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(persist: bool, *extra: str) -> str:
        port = free_port()
        directory = tmp_path / f"redis-{port}"
        directory.mkdir()
        command = [*redis_server_command(port, directory, persist=persist), *extra]
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        wait_for_port("127.0.0.1", port)
        return f"redis://127.0.0.1:{port}/0"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``jobcast check`` with an otherwise safe configuration plus ``variables``."""

    def run(**variables: str) -> Result:
        for name in list(os.environ):
            if name.startswith("JOBCAST_"):
                monkeypatch.delenv(name)
        for name, value in {**SAFE, **variables}.items():
            monkeypatch.setenv(name, value)
        return CliRunner().invoke(main, ["check"])

    return run


def test_a_redis_with_an_append_only_file_is_no_problem(
    redis_server: Callable[..., str], check: Callable[..., Result]
) -> None:
    result = check(JOBCAST_REDIS_URL=redis_server(True))
    assert result.exit_code == 0, result.output
    assert result.output == "no problems found for production\n"


def test_a_redis_that_does_not_persist_is_unsafe_and_its_password_is_masked(
    redis_server: Callable[..., str], check: Callable[..., Result]
) -> None:
    url = redis_server(False, "--requirepass", "hunter2-secret")
    result = check(JOBCAST_REDIS_URL=url.replace("redis://", "redis://:hunter2-secret@"))
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    port = url.split(":")[2].split("/")[0]
    assert result.output == (
        f"unsafe: Redis at redis://:***@127.0.0.1:{port}/0 does not persist (appendonly no):"
        " the jobs' event logs and the queued jobs' broker messages are lost when it restarts;"
        " set appendonly yes, appendfsync everysec\n"
    )


def test_a_separate_broker_redis_is_checked_too(
    redis_server: Callable[..., str], check: Callable[..., Result]
) -> None:
    broker = redis_server(False)
    result = check(JOBCAST_REDIS_URL=redis_server(True), JOBCAST_BROKER_URL=broker)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"unsafe: Redis at {broker} does not persist (appendonly no): the queued jobs' broker"
        " messages are lost when it restarts; set appendonly yes, appendfsync everysec"
    ]


def test_a_redis_that_hides_its_config_is_a_note_not_a_failure(
    redis_server: Callable[..., str], check: Callable[..., Result]
) -> None:
    # Managed services (ElastiCache, Memorystore...) rename or refuse CONFIG.
    result = check(JOBCAST_REDIS_URL=redis_server(False, "--rename-command", "CONFIG", ""))
    assert result.exit_code == 0, result.output
    note, verdict = result.output.splitlines()
    assert note.startswith("note: cannot tell whether Redis at redis://127.0.0.1:")
    assert "appendonly yes, appendfsync everysec" in note
    assert verdict == "no problems found for production"


def test_a_redis_that_fsyncs_only_when_the_os_decides_is_a_note(
    redis_server: Callable[..., str], check: Callable[..., Result]
) -> None:
    result = check(JOBCAST_REDIS_URL=redis_server(True, "--appendfsync", "no"))
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "(appendfsync no)" in result.output


def test_an_unreachable_redis_is_one_line_and_fails(check: Callable[..., Result]) -> None:
    port = free_port()
    result = check(JOBCAST_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"unsafe: cannot ask Redis at redis://127.0.0.1:{port}/0 whether it persists:"
        f" Error 111 connecting to 127.0.0.1:{port}. Connection refused."
    ]
