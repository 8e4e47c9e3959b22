"""Settings: read from JOBCAST_* variables, refused at start-up with the variable named."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from click.testing import CliRunner

from jobcast.celery_settings import celery_config
from jobcast.config import (
    DEV_SECRET,
    flask_config,
    load_settings,
    unsafe_for_production,
)
from jobcast.errors import ConfigError
from jobcast.service.cli import main

GOOD_SECRET = "k" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the JOBCAST_* variables it sets itself."""
    for name in list(os.environ):
        if name.startswith("JOBCAST_"):
            monkeypatch.delenv(name)


def test_development_defaults_need_no_environment() -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.access_token_minutes == 15
    assert settings.max_body_bytes == 1024 * 1024


def test_environment_variables_are_read_and_overrides_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBCAST_ACCESS_TOKEN_MINUTES", "5")
    monkeypatch.setenv("JOBCAST_REDIS_URL", "redis://from-env:6379/0")
    settings = load_settings({"redis_url": "redis://override:6379/1"})
    assert settings.access_token_minutes == 5
    assert settings.redis_url == "redis://override:6379/1"


@pytest.mark.parametrize(
    ("secret_key", "jwt_secret_key", "named"),
    [
        pytest.param(None, GOOD_SECRET, "JOBCAST_SECRET_KEY", id="secret-missing"),
        pytest.param(GOOD_SECRET, None, "JOBCAST_JWT_SECRET_KEY", id="jwt-secret-missing"),
        pytest.param(DEV_SECRET, GOOD_SECRET, "JOBCAST_SECRET_KEY", id="secret-is-dev-default"),
        pytest.param(GOOD_SECRET, DEV_SECRET, "JOBCAST_JWT_SECRET_KEY", id="jwt-is-dev-default"),
        pytest.param("k" * 31, GOOD_SECRET, "JOBCAST_SECRET_KEY", id="secret-too-short"),
        pytest.param(GOOD_SECRET, "k" * 31, "JOBCAST_JWT_SECRET_KEY", id="jwt-too-short"),
    ],
)
def test_production_refuses_weak_secrets_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    secret_key: str | None,
    jwt_secret_key: str | None,
    named: str,
) -> None:
    monkeypatch.setenv("JOBCAST_ENV", "production")
    for variable, value in (
        ("JOBCAST_SECRET_KEY", secret_key),
        ("JOBCAST_JWT_SECRET_KEY", jwt_secret_key),
    ):
        if value is not None:
            monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named) as caught:
        load_settings()
    assert "32 characters" in str(caught.value)


def test_production_refusal_does_not_echo_any_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message ends up in logs: it names the variable but never shows a secret's value."""
    weak, smtp_password = "hunter2-hunter2", "smtp-password-value"
    monkeypatch.setenv("JOBCAST_ENV", "production")
    monkeypatch.setenv("JOBCAST_SECRET_KEY", weak)
    monkeypatch.setenv("JOBCAST_JWT_SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("JOBCAST_SMTP_PASSWORD", smtp_password)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "JOBCAST_SECRET_KEY" in message
    for secret in (weak, GOOD_SECRET, smtp_password):
        assert secret not in message


def test_production_starts_with_two_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBCAST_ENV", "production")
    monkeypatch.setenv("JOBCAST_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("JOBCAST_JWT_SECRET_KEY", "j" * 40)
    monkeypatch.setenv("JOBCAST_DATABASE_URL", "postgresql+psycopg://jobcast@db/jobcast")
    config = flask_config(load_settings())
    assert config["SECRET_KEY"] == "s" * 32
    assert config["JWT_SECRET_KEY"] == "j" * 40


PRODUCTION_OK = {
    "env": "production",
    "secret_key": "s" * 32,
    "jwt_secret_key": "j" * 32,
    "database_url": "postgresql+psycopg://jobcast@db/jobcast",
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"database_url": "sqlite:////srv/jobcast.db"}, "JOBCAST_DATABASE_URL"),
        ({"database_url": ""}, "JOBCAST_DATABASE_URL"),
        ({"debug": True}, "JOBCAST_DEBUG"),
        ({"cors_origins": "https://app.example.com,*"}, "JOBCAST_CORS_ORIGINS"),
        ({"rate_limits": False}, "JOBCAST_RATE_LIMITS"),
        ({"jwt_secret_key": "s" * 32}, "must differ"),
    ],
)
def test_production_refuses_unsafe_settings(change: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**PRODUCTION_OK, **change})


def test_production_takes_sqlite_only_when_opted_in() -> None:
    settings = load_settings(
        {**PRODUCTION_OK, "database_url": "sqlite:////srv/j.db", "allow_sqlite_in_production": True}
    )
    assert unsafe_for_production(settings) == []


def test_a_rate_limit_in_the_wrong_notation_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="JOBCAST_LIMIT_SUBMIT_USER"):
        load_settings({"limit_submit_user": "many"})


def test_jobcast_check_lists_what_is_unsafe_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether Redis persists is asked of a real server in integration/test_check_persistence.py.
    monkeypatch.setattr(
        "jobcast.service.persistence.redis_persistence", lambda url, holds: (None, None)
    )
    for key in ("JOBCAST_SECRET_KEY", "JOBCAST_JWT_SECRET_KEY", "JOBCAST_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert "unsafe: JOBCAST_SECRET_KEY" in result.output
    assert "unsafe: JOBCAST_DATABASE_URL" in result.output
    for key, value in PRODUCTION_OK.items():
        if key != "env":
            monkeypatch.setenv(f"JOBCAST_{key.upper()}", value)
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0 and "no problems" in result.output


@pytest.mark.parametrize("profile", ["development", "testing"])
def test_other_profiles_fall_back_to_the_dev_secret(profile: str) -> None:
    config = flask_config(load_settings({"env": profile}))
    assert config["SECRET_KEY"] == DEV_SECRET == config["JWT_SECRET_KEY"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOBCAST_ENV", "staging"),
        ("JOBCAST_ACCESS_TOKEN_MINUTES", "0"),
        ("JOBCAST_ACCESS_TOKEN_MINUTES", "fifteen"),
        ("JOBCAST_SMTP_PORT", "70000"),
        ("JOBCAST_MAX_BODY_BYTES", "10"),
        ("JOBCAST_ASYNC_MODE", "asyncio"),
        ("JOBCAST_LOG_LEVEL", "LOUD"),
        ("JOBCAST_SMTP_STARTTLS", "perhaps"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBCAST_SMTP_PORT", "0")
    monkeypatch.setenv("JOBCAST_WEB_THREADS", "1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "JOBCAST_SMTP_PORT" in str(caught.value)
    assert "JOBCAST_WEB_THREADS" in str(caught.value)


def test_config_error_is_not_chained_to_the_pydantic_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBCAST_SMTP_PORT", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.__suppress_context__


def test_flask_config_carries_token_lifetimes_and_the_body_limit() -> None:
    config = flask_config(
        load_settings({"access_token_minutes": 7, "refresh_token_days": 3, "max_body_bytes": 4096})
    )
    assert config["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(minutes=7)
    assert config["JWT_REFRESH_TOKEN_EXPIRES"] == timedelta(days=3)
    assert config["MAX_CONTENT_LENGTH"] == 4096
    assert config["JWT_TOKEN_LOCATION"] == ["headers"]


def test_testing_profile_gets_a_temporary_sqlite_database() -> None:
    config = flask_config(load_settings({"env": "testing"}))
    assert config["TESTING"] is True
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert "jobcast-test-" in config["SQLALCHEMY_DATABASE_URI"]


def test_celery_uses_redis_unless_a_broker_is_given() -> None:
    redis_url = "redis://127.0.0.1:6390/2"
    assert celery_config(load_settings({"redis_url": redis_url}))["broker_url"] == redis_url
    given = celery_config(load_settings({"redis_url": redis_url, "broker_url": "amqp://mq//"}))
    assert given["broker_url"] == "amqp://mq//"


def test_celery_visibility_timeout_follows_the_setting() -> None:
    config = celery_config(load_settings({"visibility_timeout": 99}))
    assert config["broker_transport_options"]["visibility_timeout"] == 99
    assert config["task_acks_late"] is True
