"""The ``jobcast`` command: dev, web, worker, beat, db, users, demo."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

import click
from flask import Flask

from jobcast.config import Settings, load_settings, unsafe_for_production
from jobcast.errors import ConfigError
from jobcast.jobs.registry import queue_names
from jobcast.service import persistence
from jobcast.service.cli_errors import JobcastGroup, check_database, check_redis
from jobcast.service.procs import (
    NO_PARENT_DEATH_SIGNAL,
    ChildExited,
    NotReady,
    StopRequested,
    Supervisor,
    free_port,
    port_taken,
    redis_server_command,
    redis_unreachable,
    share_metrics,
    without_password,
)

DEMO_EMAIL = "demo@example.com"


@click.group(
    cls=JobcastGroup,
    # web hands over to gunicorn, whose failures this process would never see.
    preflight={"web": (check_database, check_redis)},
)
@click.version_option(package_name="jobcast", prog_name="jobcast")
@click.option(
    "--debug",
    is_flag=True,
    help="Show an error's traceback instead of one line (also JOBCAST_DEBUG=true).",
)
def main(debug: bool) -> None:
    """jobcast: background jobs for Flask with live progress."""


def _app() -> Flask:
    from jobcast.service.app import create_app

    return create_app()


def _celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "jobcast.service.worker", *args]


def worker_commands(pool: str, settings: Settings) -> list[tuple[str, list[str]]]:
    """One gevent worker for I/O-bound jobs, one prefork worker for CPU-bound ones."""
    shape = {
        "io": ("gevent", settings.io_concurrency),
        "cpu": ("prefork", settings.cpu_concurrency),
    }
    queues = queue_names(settings.queue_prefix)
    return [
        (
            f"worker-{kind}",
            _celery_argv(
                "worker", "-Q", queues[kind], "-P", shape[kind][0], "-c", str(shape[kind][1]),
                "-n", f"{kind}@%h", "--without-gossip", "--without-mingle",
                "-l", settings.log_level,
            ),
        )
        for kind in ("io", "cpu")
        if pool in (kind, "all")
    ]  # fmt: skip


@main.command()
@click.option(
    "--pool",
    type=click.Choice(["all", "io", "cpu"]),
    default="all",
    show_default=True,
    help="io: gevent pool for I/O-bound jobs; cpu: process pool for CPU-bound ones.",
)
def worker(pool: str) -> None:
    """Run Celery workers for the job queues (and their metrics on JOBCAST_METRICS_BIND)."""
    settings = load_settings()
    sup = Supervisor(own_sessions=False)
    share_metrics(sup, os.environ, settings)
    for name, argv in worker_commands(pool, settings):
        sup.start(name, argv)
    sys.exit(sup.run())


@main.command()
def beat() -> None:
    """Run Celery beat (result expiry and other housekeeping)."""
    schedule = Path("instance") / "celerybeat-schedule"
    schedule.parent.mkdir(exist_ok=True)
    level = load_settings().log_level
    os.execv(sys.executable, _celery_argv("beat", "-l", level, "-s", str(schedule)))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def web(host: str, port: int) -> None:
    """Serve the API and Socket.IO (gunicorn, one process per port: sticky sessions)."""
    from jobcast.service.serving.server import serve

    share_metrics(Supervisor(own_sessions=False), os.environ, load_settings())
    serve(host, port)


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from jobcast.service import migrate

    with _app().app_context():
        migrate.upgrade(revision)
    click.echo(f"database upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from jobcast.service import migrate

    with _app().app_context():
        migrate.downgrade(revision)


@main.group()
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.argument("email")
@click.password_option()
@click.option("--admin", is_flag=True, help="With the admin role (recorded in the audit log).")
def users_create(email: str, password: str, admin: bool) -> None:
    """Create a user account."""
    from pydantic import ValidationError

    from jobcast.errors import ApiError
    from jobcast.service.admin.audit import Actor
    from jobcast.service.auth.users import create_user
    from jobcast.service.auth.views import Credentials

    try:
        Credentials(email=email, password=password)
    except ValidationError as exc:
        raise click.ClickException(
            "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        ) from None
    with _app().app_context():
        try:
            user = create_user(email, password, admin=admin, actor=Actor.command_line())
        except ApiError as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(f"created {'admin' if admin else 'user'} {user.id} <{user.email}>")


@users.command("promote")
@click.argument("email")
def users_promote(email: str) -> None:
    """Give the user EMAIL the admin role (recorded in the audit log)."""
    _set_admin(email, True)


@users.command("demote")
@click.argument("email")
def users_demote(email: str) -> None:
    """Take the admin role from the user EMAIL, from their next request on (audit logged)."""
    _set_admin(email, False)


def _set_admin(email: str, admin: bool) -> None:
    from jobcast.errors import ApiError
    from jobcast.service.admin.audit import Actor
    from jobcast.service.auth.users import set_admin

    with _app().app_context():
        try:
            user, changed = set_admin(email, admin, Actor.command_line())
        except ApiError as exc:
            raise click.ClickException(exc.detail) from None
    role = "an admin" if admin else "not an admin"
    click.echo(f"{user.email} is {'now' if changed else 'already'} {role}")


@main.group()
def demo() -> None:
    """The demo dataset."""


@demo.command("seed")
@click.option("--rows", default=10_000, show_default=True, type=click.IntRange(1, 50_000_000))
@click.option("--email", default=DEMO_EMAIL, show_default=True, help="Owner of the orders.")
def demo_seed(rows: int, email: str) -> None:
    """Insert ROWS random orders for the user EMAIL."""
    from jobcast.service.auth.users import find_by_email
    from jobcast.service.builtin.seed import seed_orders

    with _app().app_context():
        user = find_by_email(email)
        if user is None:
            raise click.ClickException(f"no user {email!r}; create it with 'jobcast users create'")
        seed_orders(user.id, rows)
    click.echo(f"seeded {rows} orders for {email}")


@main.command()
def check() -> None:
    """Say what in the current configuration would be unsafe in production, including a Redis
    (JOBCAST_REDIS_URL, JOBCAST_BROKER_URL) that would lose jobs and events when it restarts."""
    notes: list[str] = []
    try:
        settings = load_settings({"env": "development"})
    except ConfigError as exc:
        problems = [str(exc)]
    else:
        problems = unsafe_for_production(settings)
        # Asked here, not in unsafe_for_production: that one runs at every start-up, offline.
        for url, holds in persistence.redis_roles(settings):
            problem, note = persistence.redis_persistence(url, holds)
            problems += [problem] if problem else []
            notes += [note] if note else []
    for problem in problems:
        click.echo(f"unsafe: {problem}")
    for note in notes:
        click.echo(f"note: {note}")
    if problems:
        sys.exit(1)
    click.echo("no problems found for production")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--redis-port",
    type=int,
    help="Port of the embedded Redis  [default: a free one]; unused with JOBCAST_REDIS_URL.",
)
@click.option(
    "--ready-timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for /readyz to answer 200 before stopping everything.",
)
def dev(host: str, port: int, redis_port: int | None, ready_timeout: float) -> None:
    """Run everything on this machine: embedded Redis, SQLite, web, workers, beat.

    Prints the URL once /readyz answers 200, and the Redis URL (also in instance/redis-url.txt).
    Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stop every process it started; on Linux they
    go even when this one is killed.
    """
    given_redis = os.environ.get("JOBCAST_REDIS_URL")
    if problem := port_taken(host, port):
        raise click.ClickException(f"{problem} (another jobcast dev?); stop it or pass --port")
    if given_redis is not None:
        if problem := redis_unreachable(given_redis):
            raise click.ClickException(
                f"JOBCAST_REDIS_URL {without_password(given_redis)} {problem}: start that "
                "Redis, or unset JOBCAST_REDIS_URL and jobcast dev starts its own"
            )
    elif redis_port is not None and (problem := port_taken("127.0.0.1", redis_port)):
        raise click.ClickException(f"{problem}; stop it or pass another --redis-port")
    if NO_PARENT_DEATH_SIGNAL:
        click.echo(f"jobcast: note: {NO_PARENT_DEATH_SIGNAL}", err=True)

    instance = Path("instance").resolve()
    instance.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("JOBCAST_ENV", "development")
    env.setdefault("JOBCAST_DATABASE_URL", f"sqlite:///{instance / 'jobcast.db'}")
    env.setdefault("JOBCAST_STORAGE_DIR", str(instance / "results"))
    redis_url_file = instance / "redis-url.txt"
    try:
        with Supervisor() as sup:
            share_metrics(sup, env, None)  # the web child serves them on JOBCAST_METRICS_BIND
            if given_redis is None:
                redis_port = redis_port or free_port()
                _start_redis(sup, redis_port, instance)
                env["JOBCAST_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
                redis_url_file.write_text(env["JOBCAST_REDIS_URL"] + "\n")
            os.environ.update(env)
            password = _prepare_dev_database(instance)
            _start_stack(sup, host, port, env, ready_timeout)
            click.echo(f"\n  jobcast is running at http://{host}:{port}/")
            click.echo(f"  demo account: {DEMO_EMAIL} / {password}")
            click.echo(
                f"  redis: {without_password(env['JOBCAST_REDIS_URL'])}"
                " (point redis-cli -u or Flower's --broker at it)"
            )
            click.echo("  Ctrl-C stops everything.\n")
            code = sup.run()
    except StopRequested:  # a signal before the stack was up: all of it is stopped by now
        code = 0
    finally:
        if given_redis is None:
            redis_url_file.unlink(missing_ok=True)
    sys.exit(code)


def _start_redis(sup: Supervisor, port: int, instance: Path) -> None:
    # SIGTERM should dev die unannounced: Redis closes its append-only file first.
    sup.start(
        "redis", redis_server_command(port, instance, persist=True), death_signal=signal.SIGTERM
    )
    try:
        sup.wait_for_port("redis", "127.0.0.1", port)
    except (ChildExited, NotReady) as exc:
        raise click.ClickException(f"{exc}; stopped everything") from None


def _start_stack(
    sup: Supervisor, host: str, port: int, env: dict[str, str], ready_timeout: float
) -> None:
    """Web, workers and beat, and wait until /readyz answers 200."""
    # SIGKILL for each should dev die unannounced: a Celery warm shutdown waits for running jobs,
    # and its cold one retries the broker, which goes at the same moment; gunicorn and beat hold
    # nothing worth a wait. A job running then ends as it would in a worker that crashed.
    sup.start(
        "web",
        [sys.executable, "-m", "jobcast", "web", "--host", host, "--port", str(port)],
        env,
        death_signal=signal.SIGKILL,
    )
    for name, argv in worker_commands("all", load_settings()):
        sup.start(name, argv, env, death_signal=signal.SIGKILL)
    sup.start("beat", [sys.executable, "-m", "jobcast", "beat"], env, death_signal=signal.SIGKILL)
    local = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    local = f"[{local}]" if ":" in local else local
    try:
        sup.wait_until_ready(f"http://{local}:{port}/readyz", ready_timeout)
    except ChildExited as exc:
        raise click.ClickException(f"{exc} before jobcast was ready; stopped everything") from None
    except NotReady as exc:
        raise click.ClickException(f"{exc}; stopped everything") from None


def _prepare_dev_database(instance: Path) -> str:
    """Migrate; on first run create the demo account and seed its orders. Returns its password."""
    from jobcast.service import migrate
    from jobcast.service.auth.users import create_user, find_by_email
    from jobcast.service.builtin.seed import seed_orders

    credentials = instance / "demo-password.txt"
    with _app().app_context():
        migrate.upgrade()
        if find_by_email(DEMO_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            user = create_user(DEMO_EMAIL, password)
            credentials.write_text(password)
            credentials.chmod(0o600)
            click.echo("first run: seeding 10,000 demo orders ...")
            seed_orders(user.id, 10_000)
    return credentials.read_text().strip() if credentials.exists() else "(see demo-password.txt)"


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", default=5555, show_default=True, type=int)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Flower asks for no login unless told (--basic-auth=user:password): keep it local.",
)
@click.argument("flower_options", nargs=-1, type=click.UNPROCESSED)
def flower(port: int, address: str, flower_options: tuple[str, ...]) -> None:
    """Run Flower, Celery's dashboard, on this configuration's broker (JOBCAST_REDIS_URL or
    JOBCAST_BROKER_URL): jobs by type, workers, queue lengths. Other options go to Flower."""
    import importlib.util

    if importlib.util.find_spec("flower") is None:
        raise click.ClickException("Flower is not installed: pip install 'jobcast[flower]'")
    load_settings()  # a bad setting stops here, before Flower starts
    argv = _celery_argv("flower", f"--port={port}", f"--address={address}", *flower_options)
    os.execv(sys.executable, argv)
