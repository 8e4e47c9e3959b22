"""A JSON API with Flask-JWT-Extended that adds jobcast: its users find primes in the background.

The API has its own users in plain SQLAlchemy (an ``Engine`` and sessions, no Flask-SQLAlchemy),
its own Celery (Flask's ``celery_init_app``) and no Socket.IO of its own: jobcast makes one, on
jobcast's Redis, for its namespace ``/jobcast``. Clients sign in with ``POST /login`` and send
the access token as a Bearer header, and as ``auth={"token": ...}`` on the socket. The lines
that wire jobcast in sit between ``# --- jobcast ---`` markers.

This module builds the app on import, because the web server and the Celery worker both
import it (``celery -A examples.jwt_api.app:celery worker``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import click
from celery import Celery, Task
from flask import Flask, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_jwt_extended import JWTManager, create_access_token, get_jwt_identity, jwt_required
from pydantic import BaseModel, Field
from sqlalchemy import Engine, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

# --- jobcast ---
from jobcast import Jobcast, JobContext, job
from jobcast.errors import ApiError
from jobcast.identity import JWTIdentity

# --- end jobcast ---

HERE = Path(__file__).parent

jwt = JWTManager()
# --- jobcast ---
jobcast = Jobcast()
# --- end jobcast ---


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))


# --- the API's own job type: any function, registered with @job ------------------------------


class PrimesParams(BaseModel):
    model_config = {"extra": "forbid"}

    below: int = Field(ge=2, le=1_000_000)
    # Seconds to wait after each step, so the progress is slow enough to watch.
    pause: float = Field(0.1, ge=0, le=2)


STEPS = 20


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@job("primes.find", params=PrimesParams, title="Find primes", time_limit=300)
def find_primes(ctx: JobContext[PrimesParams]) -> dict[str, Any]:
    """Find the primes below a number in twenty steps, then write them to a text file."""
    below = ctx.params.below
    size = max(1, math.ceil(below / STEPS))
    primes: list[int] = []
    for start in range(0, below, size):
        primes.extend(n for n in range(start, min(start + size, below)) if is_prime(n))
        ctx.progress(100 * min(start + size, below) / below, f"{len(primes)} primes so far")
        time.sleep(ctx.params.pause)
    ctx.result_path("primes.txt", "text/plain").write_text("\n".join(map(str, primes)) + "\n")
    return {"count": len(primes), "largest": primes[-1] if primes else None}


# --- the app ---------------------------------------------------------------------------------


def create_app() -> Flask:
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    redis_url = os.environ.get("JOBCAST_REDIS_URL", "redis://127.0.0.1:6379/0")
    database_url = os.environ.get("EXAMPLE_DATABASE_URL", f"sqlite:///{app.instance_path}/api.db")
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-change-me-dev-only-change-me"),
        CELERY={"broker_url": redis_url, "task_ignore_result": True},
        # --- jobcast ---
        JOBCAST_REDIS_URL=redis_url,
        JOBCAST_STORAGE_DIR=os.environ.get("JOBCAST_STORAGE_DIR", f"{app.instance_path}/results"),
        JOBCAST_ASYNC_MODE="threading",  # for the Socket.IO server jobcast makes
        # --- end jobcast ---
    )
    engine = create_engine(database_url)
    app.extensions["engine"] = engine
    jwt.init_app(app)
    celery = celery_init_app(app)
    # --- jobcast ---
    jobcast.init_app(app, db=engine, celery=celery, identity=JWTIdentity())
    # --- end jobcast ---
    register_views(app, engine)
    register_commands(app, engine)
    return app


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented pattern: every task runs inside the app context."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def register_views(app: Flask, engine: Engine) -> None:
    @app.post("/login")
    def login() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        email = str(body.get("email", "")).strip().lower()
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.email == email))
        if user is None or not check_password_hash(user.password_hash, str(body.get("password"))):
            return jsonify(error="unknown email or wrong password"), 401
        return jsonify(access_token=create_access_token(identity=str(user.id)))

    @app.post("/primes")
    @jwt_required()
    def primes() -> ResponseReturnValue:
        params = request.get_json(silent=True) or {}
        # --- jobcast ---
        try:
            started = jobcast.submit("primes.find", params, owner=get_jwt_identity())
        except ApiError as refused:  # invalid params, too many unfinished jobs...
            return jsonify(detail=refused.detail, errors=refused.errors), refused.status
        # --- end jobcast ---
        location = url_for("jobcast.get_job", job_id=started.id)
        return jsonify(id=started.id, status=started.status), 202, {"Location": location}


def register_commands(app: Flask, engine: Engine) -> None:
    @app.cli.command("init-db")
    def init_db() -> None:
        """Create the API's tables and jobcast's."""
        Base.metadata.create_all(engine)
        # --- jobcast ---
        jobcast.create_all()
        # --- end jobcast ---
        click.echo("tables created")

    @app.cli.command("add-user")
    @click.argument("email")
    @click.password_option()
    def add_user(email: str, password: str) -> None:
        """Add a user who can sign in."""
        with Session(engine) as session:
            user = User(email=email.strip().lower(), password_hash=generate_password_hash(password))
            session.add(user)
            session.commit()
            click.echo(f"user {user.id} added: {user.email}")


app = create_app()
celery: Celery = app.extensions["celery"]
