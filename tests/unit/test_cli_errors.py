"""URL settings are refused at start-up unless jobcast can use them, and the CLI's translation
of failures into messages names the setting, masks passwords and leaves bugs alone."""

from __future__ import annotations

import os

import click
import pytest
from click.testing import CliRunner

from jobcast.config import load_settings, mask_url
from jobcast.errors import ConfigError
from jobcast.service.cli import main
from jobcast.service.cli_errors import DOCS, JobcastGroup, explain


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOBCAST_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redis_url", "redis://127.0.0.1:6379/0"),
        ("redis_url", "rediss://:pw@redis.example.com:6380/1"),
        ("broker_url", ""),
        ("broker_url", "amqp://guest@rabbit//"),
        ("broker_url", "redis://a:6379/0;redis://b:6379/0"),
        ("broker_url", "sqla+sqlite:////tmp/broker.db"),
        ("database_url", ""),
        ("database_url", "sqlite:////srv/jobcast.db"),
    ],
)
def test_url_settings_jobcast_can_use_are_accepted(field: str, value: str) -> None:
    assert getattr(load_settings({field: value}), field) == value


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("redis_url", "unix:///run/redis.sock", "Unix socket"),
        ("redis_url", "http://127.0.0.1:6379", "not a Redis URL"),
        ("redis_url", "127.0.0.1:6379", "not a Redis URL"),
        ("broker_url", "nosuch://host/0", "no Celery broker transport"),
        ("broker_url", "redis://a/0;unix:///b", "no Celery broker transport"),
        ("database_url", "nonsense://", "knows no database 'nonsense'"),
        ("database_url", "::::", "not a database URL"),
    ],
)
def test_url_settings_jobcast_cannot_use_are_refused_naming_the_variable(
    field: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({field: value})
    message = str(caught.value)
    assert f"JOBCAST_{field.upper()}" in message
    assert says in message
    assert "Value error" not in message


def test_a_refused_url_is_shown_with_its_password_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"redis_url": "unix://:s3cret@/run/redis.sock"})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("postgresql+psycopg://u:p%40ss@db/x", "postgresql+psycopg://u:***@db/x"),
        ("sqlite:////srv/jobcast.db", "sqlite:////srv/jobcast.db"),
        ("redis://[::1", "***"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_a_broker_failure_names_the_broker_setting() -> None:
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError

    try:
        try:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        except ConnectionError as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as exc:
        message = explain(exc)
    assert message is not None
    assert "JOBCAST_BROKER_URL" in message
    assert "Connection refused" in message


def test_a_redis_failure_names_the_redis_setting_with_its_password_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from redis.exceptions import TimeoutError

    monkeypatch.setenv("JOBCAST_REDIS_URL", "redis://:hunter2@10.0.0.1:6379/0")
    message = explain(TimeoutError("Timeout connecting to server"))
    assert message is not None
    assert "JOBCAST_REDIS_URL" in message
    assert "hunter2" not in message


def test_a_bug_is_not_explained_and_keeps_its_traceback() -> None:
    assert explain(RuntimeError("a bug")) is None

    @click.group(cls=JobcastGroup)
    def cli() -> None: ...

    @cli.command()
    def boom() -> None:
        raise RuntimeError("a bug")

    result = CliRunner().invoke(cli, ["boom"])
    assert isinstance(result.exception, RuntimeError)


def test_a_config_error_becomes_one_message_and_exit_1() -> None:
    @click.group(cls=JobcastGroup)
    def cli() -> None: ...

    @cli.command()
    def bad() -> None:
        raise ConfigError("invalid configuration: JOBCAST_X: no (got 'y')")

    result = CliRunner().invoke(cli, ["bad"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: invalid configuration: JOBCAST_X")
    assert DOCS in result.output


def _commands(group: click.Group, path: list[str]) -> list[list[str]]:
    paths = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += _commands(command, [*path, name])
        else:
            paths.append([*path, name])
    return paths


@pytest.mark.parametrize("path", _commands(main, []), ids=lambda p: " ".join(p) or "jobcast")
def test_every_help_names_where_the_settings_are_documented(path: list[str]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert DOCS in " ".join(result.output.split())
