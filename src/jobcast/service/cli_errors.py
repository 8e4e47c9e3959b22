"""What the ``jobcast`` command says when a setting, the database, Redis or the broker fails.

Every command runs under :class:`JobcastGroup`: its ``invoke`` turns the failures a person can
fix (a refused setting, a database that cannot be opened or reached, a Redis or broker that does
not answer) into a ``click.ClickException`` of one or two lines that name the setting, its value
with any password masked, and the fix; click prints it and exits 1. ``--debug`` (or
``JOBCAST_DEBUG=true``) lets the exception through with its traceback instead. Anything not
listed here is a bug and keeps its traceback.

A command may also name checks to run once its arguments are parsed and before its own code
(``preflight``), for commands like ``jobcast web`` that hand over to another process whose
failures this one would never see. Every ``--help`` ends with where the settings are documented.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from jobcast.config import flask_config, load_settings, mask_url
from jobcast.errors import ConfigError

DOCS = "docs/configuration.md"
EPILOG = (
    f"Settings are JOBCAST_* environment variables, documented in {DOCS}."
    " --debug (or JOBCAST_DEBUG=true) shows an error's traceback."
)

#: How long a start-up check waits for Redis or the database to answer, in seconds.
CHECK_TIMEOUT = 3

Check = Callable[[], None]


class JobcastCommand(click.Command):
    """A command whose ``--help`` ends with the settings' documentation and which runs the
    checks its group names for it before its own code."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _write_epilog(formatter)

    def invoke(self, ctx: click.Context) -> Any:
        group = ctx.parent.command if ctx.parent else None
        if isinstance(group, JobcastGroup):
            for check in group.preflight.get(ctx.info_name or "", ()):
                check()
        return super().invoke(ctx)


class JobcastGroup(click.Group):
    """The ``jobcast`` group: translates known failures of any command below it into a message,
    and makes every command and sub-group below it a Jobcast one."""

    command_class = JobcastCommand
    group_class = type  # sub-groups are JobcastGroups too

    def __init__(
        self, *args: Any, preflight: Mapping[str, Sequence[Check]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.preflight = dict(preflight or {})

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _write_epilog(formatter)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.parent is not None or _debug(ctx):
                raise  # only the root translates, once
            message = explain(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


def _write_epilog(formatter: click.HelpFormatter) -> None:
    formatter.write_paragraph()
    with formatter.indentation():
        formatter.write_text(EPILOG)


def _debug(ctx: click.Context) -> bool:
    flag = os.environ.get("JOBCAST_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(ctx.params.get("debug")) or flag


def explain(exc: BaseException) -> str | None:
    """One or two lines for a failure a person can fix, or None for anything else (a bug).

    Looks through the chain of causes: kombu wraps redis-py's errors, SQLAlchemy the driver's.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = _explain_one(current)
        if message is not None:
            return message
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return None


def _explain_one(exc: BaseException) -> str | None:
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import AuthenticationError as RedisAuthError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout
    from sqlalchemy import exc as sa

    if isinstance(exc, ConfigError):
        return f"{exc}\nEvery setting is described in {DOCS}."
    if isinstance(exc, BrokerError):
        return (
            f"cannot reach the Celery broker at {_broker_url()} ({_first_line(exc)}): start it,"
            " or set JOBCAST_BROKER_URL (unset, it is JOBCAST_REDIS_URL)"
        )
    if isinstance(exc, RedisAuthError):
        return (
            f"Redis at {_redis_url()} refused the login ({_first_line(exc)}):"
            " fix the password in JOBCAST_REDIS_URL"
        )
    if isinstance(exc, RedisConnectionError | RedisTimeout):
        return (
            f"cannot reach Redis at {_redis_url()} ({_first_line(exc)}):"
            " start Redis or set JOBCAST_REDIS_URL"
        )
    if isinstance(exc, sa.DBAPIError):
        return _explain_database(exc)
    if isinstance(exc, sa.ArgumentError):  # incl. NoSuchModuleError; settings catch most
        return f"JOBCAST_DATABASE_URL={_database_url()}: {_first_line(exc)}"
    return None


def _explain_database(exc: Any) -> str | None:
    from sqlalchemy import exc as sa

    url = _database_url()
    detail = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
    if "no such table" in detail or "UndefinedTable" in type(exc.orig).__name__:
        return (
            f"the database {url} has no jobcast tables yet ({detail}):"
            " run 'jobcast db upgrade' (JOBCAST_DATABASE_URL names the database)"
        )
    if url.startswith("sqlite") and "unable to open database file" in detail:
        unset = _safe_setting(lambda: load_settings().database_url, "?") == ""
        why = (
            "JOBCAST_DATABASE_URL is unset, so it is instance/jobcast.db in the current folder"
            if unset
            else "named by JOBCAST_DATABASE_URL; its folder must exist"
        )
        return (
            f"cannot open the SQLite database {url} ({why}):\nrun jobcast from the project"
            " folder, or set JOBCAST_DATABASE_URL to an absolute sqlite:////path/jobcast.db"
        )
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        return (
            f"cannot connect to the database {url} ({detail}):"
            " start it, or set JOBCAST_DATABASE_URL"
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _safe_setting(read: Callable[[], str], fallback: str) -> str:
    try:
        return mask_url(read())
    except Exception:  # a message about one failure must not fail on another
        return fallback


def _database_url() -> str:
    return _safe_setting(
        lambda: str(flask_config(load_settings())["SQLALCHEMY_DATABASE_URI"]),
        "(JOBCAST_DATABASE_URL)",
    )


def _redis_url() -> str:
    return _safe_setting(lambda: load_settings().redis_url, "(JOBCAST_REDIS_URL)")


def _broker_url() -> str:
    return _safe_setting(lambda: load_settings().celery_broker_url, "(JOBCAST_BROKER_URL)")


def check_redis() -> None:
    """PING JOBCAST_REDIS_URL, waiting at most CHECK_TIMEOUT seconds."""
    import redis

    client = redis.Redis.from_url(
        load_settings().redis_url,
        socket_connect_timeout=CHECK_TIMEOUT,
        socket_timeout=CHECK_TIMEOUT,
    )
    try:
        client.ping()
    finally:
        client.close()


def check_database() -> None:
    """Open (and close) one connection to the database the app would use."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    url = str(flask_config(load_settings())["SQLALCHEMY_DATABASE_URI"])
    connect_args = {"connect_timeout": CHECK_TIMEOUT} if url.startswith("postgresql") else {}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
