"""A Flask-Login site that adds jobcast: its users start a word count and watch it live.

The site is an ordinary Flask app with its own users (Flask-SQLAlchemy), sign-in (Flask-Login),
Celery (Flask's ``celery_init_app``) and Socket.IO (a ``ping`` handler on "/"). jobcast joins
as a guest: its tables beside the site's, its tasks on the site's Celery, its events on the
site's Socket.IO under ``/jobcast``, its API under ``/jobcast``. The lines that wire it in sit
between ``# --- jobcast ---`` markers.

This module builds the app on import, because the web server and the Celery worker both
import it (``celery -A examples.flask_login_app.app:celery worker``).
"""

from __future__ import annotations

import csv
import math
import os
import string
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
from celery import Celery, Task
from flask import Flask, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_socketio import SocketIO, emit
from flask_sqlalchemy import SQLAlchemy
from pydantic import BaseModel, Field
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

# --- jobcast ---
from jobcast import Jobcast, JobContext, job
from jobcast.errors import ApiError
from jobcast.identity import FlaskLoginIdentity

# --- end jobcast ---

HERE = Path(__file__).parent


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
socketio = SocketIO()
# --- jobcast ---
jobcast = Jobcast()
# --- end jobcast ---


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


# --- the site's own job type: any function, registered with @job ----------------------------


class CountParams(BaseModel):
    model_config = {"extra": "forbid"}

    text: str = Field(min_length=1, max_length=200_000)
    # Seconds to wait after each step, so the bar moves slowly enough to watch.
    pause: float = Field(0.1, ge=0, le=2)


STEPS = 20


@job("words.count", params=CountParams, title="Count words", time_limit=300)
def count_words(ctx: JobContext[CountParams]) -> dict[str, Any]:
    """Count the words of a text in twenty steps, then write the counts as a CSV file."""
    words = [w.strip(string.punctuation).lower() for w in ctx.params.text.split()]
    words = [w for w in words if w]
    counts: Counter[str] = Counter()
    size = max(1, math.ceil(len(words) / STEPS))
    for start in range(0, len(words), size):
        counts.update(words[start : start + size])
        done = min(start + size, len(words))
        ctx.progress(100 * done / len(words), f"{done} of {len(words)} words read")
        time.sleep(ctx.params.pause)
    with ctx.result_path("word-counts.csv", "text/csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["word", "count"])
        writer.writerows(counts.most_common())
    return {"words": len(words), "distinct": len(counts)}


# --- the app ---------------------------------------------------------------------------------


def create_app() -> Flask:
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    redis_url = os.environ.get("JOBCAST_REDIS_URL", "redis://127.0.0.1:6379/0")
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-change-me"),
        SQLALCHEMY_DATABASE_URI=os.environ.get("EXAMPLE_DATABASE_URL", "sqlite:///example.db"),
        # The session cookie signs users in to jobcast's API and sockets too: no cross-site
        # requests get it.
        SESSION_COOKIE_SAMESITE="Lax",
        CELERY={"broker_url": redis_url, "task_ignore_result": True},
        # --- jobcast ---
        JOBCAST_REDIS_URL=redis_url,
        JOBCAST_STORAGE_DIR=os.environ.get("JOBCAST_STORAGE_DIR", f"{app.instance_path}/results"),
        # --- end jobcast ---
    )
    db.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "login"
    celery = celery_init_app(app)
    # Workers publish jobcast's events on this message queue; the web process relays them.
    socketio.init_app(app, message_queue=redis_url, async_mode="threading")
    # --- jobcast ---
    jobcast.init_app(app, db=db, celery=celery, socketio=socketio, identity=FlaskLoginIdentity())
    # --- end jobcast ---
    register_views(app)
    register_socket_handlers()
    register_commands(app)
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


def register_views(app: Flask) -> None:
    @app.get("/")
    @login_required
    def index() -> str:
        return render_template("index.html")

    @app.route("/login", methods=["GET", "POST"])
    def login() -> ResponseReturnValue:
        if request.method == "POST":
            email = request.form.get("email", "").strip().lower()
            user = db.session.scalar(select(User).where(User.email == email))
            if user is not None and user.check_password(request.form.get("password", "")):
                login_user(user)
                return redirect(url_for("index"))
            flash("Unknown email or wrong password.")
        return render_template("login.html")

    @app.post("/logout")
    @login_required
    def logout() -> ResponseReturnValue:
        # --- jobcast ---
        jobcast.disconnect(current_user.get_id())  # its live sockets end with the session
        # --- end jobcast ---
        logout_user()
        return redirect(url_for("login"))

    @app.post("/count")
    @login_required
    def count() -> ResponseReturnValue:
        params = {"text": request.form.get("text", "")}
        if "pause" in request.form:
            params["pause"] = request.form["pause"]
        # --- jobcast ---
        try:
            started = jobcast.submit("words.count", params, owner=current_user.id)
        except ApiError as refused:  # invalid params, too many unfinished jobs...
            return jsonify(detail=refused.detail, errors=refused.errors), refused.status
        # --- end jobcast ---
        location = url_for("jobcast.get_job", job_id=started.id)
        return jsonify(id=started.id, status=started.status), 202, {"Location": location}


def register_socket_handlers() -> None:
    """The site's own Socket.IO handlers, on "/": jobcast's live on "/jobcast"."""

    @socketio.on("ping")
    def ping(_data: Any = None) -> str:
        if not current_user.is_authenticated:
            return "sign in first"
        emit("pong", {"email": current_user.email})
        return "pong"


def register_commands(app: Flask) -> None:
    @app.cli.command("init-db")
    def init_db() -> None:
        """Create the site's tables and jobcast's."""
        db.create_all()
        # --- jobcast ---
        jobcast.create_all()
        # --- end jobcast ---
        click.echo("tables created")

    @app.cli.command("add-user")
    @click.argument("email")
    @click.password_option()
    def add_user(email: str, password: str) -> None:
        """Add a user who can sign in."""
        user = User(email=email.strip().lower())
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        click.echo(f"user {user.id} added: {user.email}")


app = create_app()
celery: Celery = app.extensions["celery"]
