"""Settings from ``JOBCAST_*`` environment variables, with dev/test/production profiles.

One pydantic model reads and validates every setting, so a bad value fails at start-up naming the
variable and the value, never later inside a request or a task.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from kombu.transport import TRANSPORT_ALIASES
from limits import parse_many
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from jobcast.errors import ConfigError
from jobcast.llm.settings import LLMSettings

Profile = Literal["development", "testing", "production"]

#: The secrets development falls back to; production refuses to start with any of them.
DEV_SECRET = "jobcast-dev-secret-change-me-0000000000"

#: JOBCAST_REDIS_URL schemes every Redis user in jobcast accepts (redis-py, the broker, the
#: Socket.IO queue, the rate limiter). unix:// is not one: kombu spells it redis+socket://.
REDIS_SCHEMES = frozenset({"redis", "rediss"})

#: What to install for a database driver that is missing, by the module that failed to import.
DRIVER_EXTRAS = {"psycopg": "jobcast[postgres]", "psycopg2": "jobcast[postgres]"}


class Settings(LLMSettings, BaseSettings):
    """Every knob jobcast has; each field is ``JOBCAST_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="JOBCAST_", extra="ignore", frozen=True)

    env: Profile = "development"
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""
    secret_key: str = ""
    jwt_secret_key: str = ""
    storage_dir: Path = Path("instance/results")
    storage_backend: str = "local"
    public_url: str = ""
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(30, ge=1, le=365)
    download_url_minutes: int = Field(15, ge=1, le=24 * 60)
    result_retention_hours: float = Field(168, gt=0)
    event_retention_hours: float = Field(24, gt=0)
    result_sweep_seconds: float = Field(3600, gt=0)
    queued_redispatch_seconds: float = Field(60, gt=0)
    job_lease_seconds: float = Field(30, ge=1)
    # How often beat looks for lost attempts (running jobs whose lease lapsed) and lost
    # messages; a lost attempt is recovered within job_lease_seconds + this.
    recovery_sweep_seconds: float = Field(10, gt=0)
    # How long a worker retries a job's final write through a database outage before it gives
    # the job up to the recovery sweep, and waits out a Redis outage to send its outcome event.
    db_retry_seconds: float = Field(30, ge=0)
    broker_restore_seconds: int = Field(10, ge=1)
    durable_events: bool = True
    sse_keepalive_seconds: float = Field(15, gt=0, le=300)
    visibility_timeout: int = Field(7200, ge=10)
    # Celery task events (sent, received, started, succeeded...), for Flower and `celery events`:
    # a few Redis publishes per job, by the submitting web process and the worker.
    task_events: bool = True
    job_modules: str = "jobcast.service.builtin"
    # Where the extension mounts in a host app (the service mounts at /api/v1 and /).
    url_prefix: str = Field("/jobcast", pattern=r"^(/[A-Za-z0-9._~-]+)+$")
    namespace: str = Field("/jobcast", pattern=r"^/[A-Za-z0-9._~/-]*$")
    queue_prefix: str = Field("jobcast", pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,100}$")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "jobcast@localhost"
    smtp_timeout: float = Field(10, gt=0)
    # Whom email.send may write to: empty = only the job owner's own address; a comma list of
    # domains; "*" = anyone (which makes the server a mail relay for every user).
    email_recipients: str = ""
    async_mode: Literal["threading", "gevent"] = "gevent"
    socketio_channel: str = "jobcast"
    io_concurrency: int = Field(200, ge=1, le=5000)
    cpu_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=4096)
    web_threads: int = Field(500, ge=4, le=10000)
    # API requests one web process works on at once (Socket.IO connections do not count): the
    # rest wait their turn, so a burst of requests cannot delay live events (bulkhead.py).
    web_api_concurrency: int = Field(2, ge=1, le=10000)
    db_pool_size: int = Field(10, ge=1, le=1000)
    db_max_overflow: int = Field(40, ge=0, le=10000)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    progress_interval: float = Field(0.1, ge=0)
    db_progress_interval: float = Field(1.0, ge=0)
    # job.output events: merged to at most one per interval per job (ctx.output, stream_text).
    output_interval: float = Field(0.05, ge=0)
    # Who writes export.xlsx: "rustpy-xlsxwriter" (Rust) is several times faster and needs
    # pip install 'jobcast[fast-xlsx]'.
    xlsx_engine: Literal["xlsxwriter", "rustpy-xlsxwriter"] = "xlsxwriter"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "json": one JSON object per log line (python-json-logger), with the request, job and
    # trace ids; unset: plain lines in development and testing, JSON in production.
    log_format: Literal["plain", "json", ""] = ""
    # Prometheus metrics (docs/operations.md): collected unless metrics=false. GET /metrics is
    # open in development; in production it answers only a scraper that sends metrics_token as
    # a Bearer token, and metrics_bind (host:port) serves them on an address of their own.
    metrics: bool = True
    metrics_token: str = ""
    metrics_bind: str = Field("", pattern=r"^$|^[A-Za-z0-9.:\[\]-]*:[0-9]{1,5}$")
    debug: bool = False
    # Abuse limits (Flask-Limiter notation: "10/minute;100/hour"); rate_limits=false turns the
    # rate limits off, e.g. for load tests. The caps below stay on.
    rate_limits: bool = True
    limit_login_ip: str = "30/minute;300/hour"
    limit_login_email: str = "10/minute;100/hour"
    limit_register_ip: str = "20/hour"
    limit_refresh_user: str = "60/minute"
    limit_submit_user: str = "120/minute"
    max_active_jobs: int = Field(100, ge=1, le=100_000)
    max_sockets_per_user: int = Field(20, ge=1, le=10_000)
    max_streams_per_user: int = Field(20, ge=1, le=10_000)
    socket_max_message_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Engine.IO heartbeats: the server pings every interval and drops a client that has not
    # answered within the timeout. Keep the interval under any proxy's idle timeout.
    socket_ping_interval: int = Field(25, ge=1, le=3600)
    socket_ping_timeout: int = Field(20, ge=1, le=3600)
    socket_auth_check_seconds: float = Field(5, gt=0, le=300)
    cors_origins: str = ""
    # How many reverse proxies stand in front of the web processes: their X-Forwarded-For /
    # -Proto / -Host are then believed, so rate limits see the real client address.
    trusted_proxies: int = Field(0, ge=0, le=5)
    allow_sqlite_in_production: bool = False

    @field_validator(
        "limit_login_ip",
        "limit_login_email",
        "limit_register_ip",
        "limit_refresh_user",
        "limit_submit_user",
    )
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"not a rate limit like '10/minute;100/hour': {value!r}") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme == "unix":
            raise ValueError(
                "a Unix socket is not supported (this URL is also the Celery broker's, and"
                " kombu has no unix:// transport): use redis://host:port/db or rediss://"
            )
        if scheme not in REDIS_SCHEMES:
            raise ValueError("not a Redis URL: use redis://host:port/db or rediss://host:port/db")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        # kombu takes a ';'-separated failover list; "sqla+postgresql://" is transport "sqla".
        for url in filter(None, (part.strip() for part in value.split(";"))):
            transport = urlsplit(url).scheme.partition("+")[0]
            if transport not in TRANSPORT_ALIASES:
                raise ValueError(
                    "no Celery broker transport for this URL: leave it empty to use"
                    " JOBCAST_REDIS_URL, or use redis://, rediss:// or amqp://"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_loads(cls, value: str) -> str:
        if value:
            _check_database_url(value)
        return value

    @property
    def celery_broker_url(self) -> str:
        """``broker_url``, or the Redis of everything else when unset."""
        return self.broker_url or self.redis_url

    @property
    def log_style(self) -> Literal["plain", "json"]:
        """``log_format``, or the profile's default where it is unset."""
        if self.log_format:
            return self.log_format
        return "json" if self.env == "production" else "plain"

    @property
    def origins(self) -> list[str]:
        """Allowed cross-origin callers (CORS and Socket.IO); empty means same origin only."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _production_is_safe(self) -> Settings:
        if self.env == "production":
            problems = unsafe_for_production(self)
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self


def unsafe_for_production(settings: Settings) -> list[str]:
    """What in ``settings`` would be unsafe on the open internet; ``jobcast check`` prints it."""
    problems = []
    for name in ("secret_key", "jwt_secret_key"):
        value = getattr(settings, name)
        if not value or value == DEV_SECRET or len(value) < 32:
            problems.append(
                f"JOBCAST_{name.upper()} must be set to a random value of at least 32 characters"
            )
    if settings.secret_key and settings.secret_key == settings.jwt_secret_key:
        problems.append("JOBCAST_SECRET_KEY and JOBCAST_JWT_SECRET_KEY must differ")
    if settings.debug:
        problems.append("JOBCAST_DEBUG must be false")
    url = settings.database_url
    if (not url or url.startswith("sqlite")) and not settings.allow_sqlite_in_production:
        problems.append(
            "JOBCAST_DATABASE_URL is SQLite: use PostgreSQL, or opt in with"
            " JOBCAST_ALLOW_SQLITE_IN_PRODUCTION=true"
        )
    if "*" in settings.origins:
        problems.append("JOBCAST_CORS_ORIGINS must list origins, never '*'")
    if not settings.rate_limits:
        problems.append("JOBCAST_RATE_LIMITS is off")
    return problems


def _check_database_url(value: str) -> None:
    """Raise ValueError unless SQLAlchemy parses ``value`` and its dialect and driver load."""
    try:
        url = make_url(value)
        dialect = url.get_dialect()
    except NoSuchModuleError:  # before its base class, ArgumentError
        raise ValueError(
            f"SQLAlchemy knows no database {url.drivername!r}: use postgresql+psycopg://"
            " or sqlite://"
        ) from None
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL: use postgresql+psycopg://user:password@host/db"
            " or sqlite:////absolute/path/jobcast.db"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or url.drivername).partition(".")[0]
        extra = DRIVER_EXTRAS.get(module)
        fix = f"pip install '{extra}'" if extra else f"install the package of module {module!r}"
        if module == "psycopg2":
            fix += " and use postgresql+psycopg://"
        raise ValueError(f"the {url.drivername} driver is not installed: {fix}") from None


def mask_url(value: str) -> str:
    """``value`` with any password in it replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:  # not a URL at all: it may still hold a secret
        return "***"
    if password is None:
        return value
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Read the environment (plus ``overrides``, which win) and raise ConfigError on bad values."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def settings_from_config(config: Mapping[str, Any]) -> Settings:
    """Settings from a host app's ``JOBCAST_*`` config keys (over the environment's). A host
    registers its own job types by importing them: no job module is loaded unless named."""
    overrides = {
        key.removeprefix("JOBCAST_").lower(): value
        for key, value in config.items()
        if key.startswith("JOBCAST_")
    }
    overrides.setdefault("job_modules", os.environ.get("JOBCAST_JOB_MODULES", ""))
    return load_settings(overrides)


def _describe(error: Any) -> str:
    """One problem, naming the variable and (for a single field, never a secret) the value."""
    if not error["loc"]:  # a check across fields: its message names the variables itself
        return str(error["msg"]).removeprefix("Value error, ")
    name = "JOBCAST_" + "_".join(str(part) for part in error["loc"]).upper()
    value = error["input"]
    if any(w in name for w in ("SECRET", "PASSWORD", "API_KEY")):
        shown = "***"
    elif name.endswith("_URL") and isinstance(value, str):
        shown = repr(mask_url(value))
    else:
        shown = repr(value)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message} (got {shown})"


def flask_config(settings: Settings) -> dict[str, Any]:
    """Translate settings into the Flask and extension config keys they drive."""
    secret = settings.secret_key or DEV_SECRET
    database_url = settings.database_url or _default_database_url(settings)
    return {
        "JOBCAST": settings,
        "TESTING": settings.env == "testing",
        "SECRET_KEY": secret,
        "JWT_SECRET_KEY": settings.jwt_secret_key or secret,
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=settings.access_token_minutes),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=settings.refresh_token_days),
        "JWT_TOKEN_LOCATION": ["headers"],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(database_url, settings),
        "MAX_CONTENT_LENGTH": settings.max_body_bytes,
        "DEBUG": settings.debug,
        "RATELIMIT_ENABLED": settings.rate_limits,
        "RATELIMIT_STORAGE_URI": limits_storage(settings.redis_url),
        "RATELIMIT_STRATEGY": "moving-window",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": "jobcast:limits",
    }


def limits_storage(redis_url: str) -> str:
    """The rate limiter's name for the same Redis (it spells a Unix socket differently)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


def _default_database_url(settings: Settings) -> str:
    if settings.env == "testing":
        return "sqlite:///" + str(Path(tempfile.gettempdir()) / f"jobcast-test-{os.getpid()}.db")
    return "sqlite:///" + str(Path("instance/jobcast.db").resolve())


def _engine_options(database_url: str, settings: Settings) -> dict[str, Any]:
    """Connection pools sized so no worker greenlet or web thread starves for a connection."""
    if database_url.startswith("sqlite"):
        # Connections are cheap files handles: one per concurrent task or request. Web, io and
        # cpu workers all write, so wait for the lock instead of failing at once.
        return {
            "connect_args": {"timeout": 30, "check_same_thread": False},
            "pool_size": settings.db_pool_size,
            "max_overflow": max(settings.io_concurrency, settings.web_threads),
        }
    return {
        "pool_pre_ping": True,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
    }
