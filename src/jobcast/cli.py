"""The ``jobcast`` command: dev, web, worker, beat, db, users, demo."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
from flask import Flask

from jobcast.config import Settings, load_settings, unsafe_for_production
from jobcast.errors import ConfigError
from jobcast.jobs.registry import QUEUES
from jobcast.procs import Supervisor, free_port, redis_server_command, wait_for_port

DEMO_EMAIL = "demo@example.com"


@click.group()
def main() -> None:
    """jobcast: background jobs for Flask with live progress."""


def _app() -> Flask:
    from jobcast.app import create_app

    return create_app()


def _celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "jobcast.worker", *args]


def worker_commands(pool: str, settings: Settings) -> list[tuple[str, list[str]]]:
    """One gevent worker for I/O-bound jobs, one prefork worker for CPU-bound ones."""
    shape = {
        "io": ("gevent", settings.io_concurrency),
        "cpu": ("prefork", settings.cpu_concurrency),
    }
    return [
        (
            f"worker-{kind}",
            _celery_argv(
                "worker", "-Q", QUEUES[kind], "-P", shape[kind][0], "-c", str(shape[kind][1]),
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
    """Run Celery workers for the job queues."""
    sup = Supervisor(own_sessions=False)
    for name, argv in worker_commands(pool, load_settings()):
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
    from jobcast.server import serve

    serve(host, port)


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from jobcast import migrate

    with _app().app_context():
        migrate.upgrade(revision)
    click.echo(f"database upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from jobcast import migrate

    with _app().app_context():
        migrate.downgrade(revision)


@main.group()
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.argument("email")
@click.password_option()
def users_create(email: str, password: str) -> None:
    """Create a user account."""
    from pydantic import ValidationError

    from jobcast.auth.users import create_user
    from jobcast.auth.views import Credentials
    from jobcast.errors import ApiError

    try:
        Credentials(email=email, password=password)
    except ValidationError as exc:
        raise click.ClickException(
            "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        ) from None
    with _app().app_context():
        try:
            user = create_user(email, password)
        except ApiError as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(f"created user {user.id} <{user.email}>")


@main.group()
def demo() -> None:
    """The demo dataset."""


@demo.command("seed")
@click.option("--rows", default=10_000, show_default=True, type=click.IntRange(1, 50_000_000))
@click.option("--email", default=DEMO_EMAIL, show_default=True, help="Owner of the orders.")
def demo_seed(rows: int, email: str) -> None:
    """Insert ROWS random orders for the user EMAIL."""
    from jobcast.auth.users import find_by_email
    from jobcast.builtin.seed import seed_orders

    with _app().app_context():
        user = find_by_email(email)
        if user is None:
            raise click.ClickException(f"no user {email!r}; create it with 'jobcast users create'")
        seed_orders(user.id, rows)
    click.echo(f"seeded {rows} orders for {email}")


@main.command()
def check() -> None:
    """Say what in the current configuration would be unsafe in production."""
    try:
        problems = unsafe_for_production(load_settings({"env": "development"}))
    except ConfigError as exc:
        problems = [str(exc)]
    for problem in problems:
        click.echo(f"unsafe: {problem}")
    if problems:
        sys.exit(1)
    click.echo("no problems found for production")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def dev(host: str, port: int) -> None:
    """Run everything on this machine: embedded Redis, SQLite, web, workers, beat."""
    instance = Path("instance").resolve()
    instance.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("JOBCAST_ENV", "development")
    env.setdefault("JOBCAST_DATABASE_URL", f"sqlite:///{instance / 'jobcast.db'}")
    env.setdefault("JOBCAST_STORAGE_DIR", str(instance / "results"))
    sup = Supervisor()
    if "JOBCAST_REDIS_URL" not in os.environ:
        redis_port = free_port()
        sup.start("redis", redis_server_command(redis_port, instance, persist=True))
        wait_for_port("127.0.0.1", redis_port)
        env["JOBCAST_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    os.environ.update(env)
    try:
        password = _prepare_dev_database(instance)
        sup.start(
            "web",
            [sys.executable, "-m", "jobcast", "web", "--host", host, "--port", str(port)],
            env,
        )
        for name, argv in worker_commands("all", load_settings()):
            sup.start(name, argv, env)
        sup.start("beat", [sys.executable, "-m", "jobcast", "beat"], env)
        wait_for_port(host if host != "0.0.0.0" else "127.0.0.1", port, timeout=60)
    except BaseException:
        sup.stop()
        raise
    click.echo(f"\n  jobcast is running at http://{host}:{port}/")
    click.echo(f"  demo account: {DEMO_EMAIL} / {password}")
    click.echo("  Ctrl-C stops everything.\n")
    sys.exit(sup.run())


def _prepare_dev_database(instance: Path) -> str:
    """Migrate; on first run create the demo account and seed its orders. Returns its password."""
    from jobcast import migrate
    from jobcast.auth.users import create_user, find_by_email
    from jobcast.builtin.seed import seed_orders

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
