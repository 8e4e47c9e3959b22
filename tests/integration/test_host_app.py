"""jobcast is a guest in a host app: outside its blueprint, namespace, tables and tasks, the host
behaves exactly as it did without jobcast.

The host here has what a real Flask team's app has: its own error handlers, a session login,
its own Flask-SQLAlchemy session, Socket.IO handlers on ``/``, its own Celery with its own
settings and tasks. Each is checked with jobcast added against the same app without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, Task
from celery import _state as celery_state
from flask import Flask, jsonify, request, session
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from redis import Redis
from sqlalchemy import String, create_engine
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from jobcast import Jobcast
from jobcast.identity import CallableIdentity, Grant
from jobcast.jobs.registry import job

HOST_CELERY = {
    "task_default_queue": "celery",
    "task_serializer": "json",
    "task_acks_late": False,
    "worker_prefetch_multiplier": 4,
    "broker_transport_options": {"visibility_timeout": 3600},
    "worker_hijack_root_logger": True,
}


@job("host.noop", title="Does nothing")
def noop(ctx: Any) -> dict[str, Any]:
    return {}


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


class HostError(Exception):
    pass


def make_host(tmp_path: Path, host_redis: str, *, with_jobcast: bool) -> dict[str, Any]:
    """The same host app, with or without jobcast."""
    app = Flask("host")
    app.config.update(
        SECRET_KEY="host-secret",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'host.db'}",
        JOBCAST_REDIS_URL=host_redis,
        JOBCAST_RATE_LIMITS=False,
    )
    db = SQLAlchemy(app, model_class=Base)
    socketio = SocketIO(app, message_queue=host_redis, async_mode="threading")

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery("host", task_cls=FlaskTask, broker=host_redis)
    celery.conf.update(HOST_CELERY)

    @celery.task(name="host.add", shared=False)
    def add(a: int, b: int) -> int:
        return a + b

    @app.errorhandler(404)
    def not_found(_error: Exception) -> tuple[str, int]:
        return "<h1>host 404</h1>", 404

    @app.errorhandler(HostError)
    def host_error(_error: Exception) -> tuple[str, int]:
        return "host handled it", 418

    @app.post("/login")
    def login() -> Any:
        session["user"] = request.form["user"]
        return jsonify(ok=True)

    @app.get("/me")
    def me() -> Any:
        return jsonify(user=session.get("user"))

    @app.post("/upload")
    def upload() -> Any:
        return jsonify(size=len(request.get_data()))

    @app.get("/boom")
    def boom() -> Any:
        raise HostError

    @socketio.on("connect")
    def connect(_auth: Any = None) -> None:
        socketio.emit("hello", {"from": "host"}, to=request.sid)  # type: ignore[attr-defined]

    @socketio.on("ping")
    def ping(data: Any) -> str:
        return "pong"

    with app.app_context():
        db.create_all()
    parts: dict[str, Any] = {"app": app, "db": db, "socketio": socketio, "celery": celery}
    if with_jobcast:
        identity = CallableIdentity(lambda: session.get("user"))
        jobcast = Jobcast(app, db=db, celery=celery, socketio=socketio, identity=identity)
        with app.app_context():
            jobcast.create_all()
        parts["jobcast"] = jobcast
    return parts


def snapshot(parts: dict[str, Any]) -> dict[str, Any]:
    """What a guest must not change, as comparable values."""
    app: Flask = parts["app"]
    server = parts["socketio"].server
    return {
        "config": {
            k: repr(v)
            for k, v in app.config.items()
            if not k.startswith("JOBCAST_") and k != "SQLALCHEMY_DATABASE_URI"
        },
        "json": type(app.json),
        "session_interface": type(app.session_interface),
        "request_class": app.request_class,
        "wsgi_app": type(app.wsgi_app),
        # App-wide hooks and handlers (key None): jobcast's own sit under its blueprint's name.
        "before": len(app.before_request_funcs.get(None, [])),
        "after": len(app.after_request_funcs.get(None, [])),
        "teardown_request": len(app.teardown_request_funcs.get(None, [])),
        "error_handlers": {
            code: sorted(f"{c.__name__}:{f.__name__}" for c, f in handlers.items())
            for code, handlers in app.error_handler_spec.get(None, {}).items()
        },
        "socketio_server": (
            server.eio.max_http_buffer_size,
            server.eio.ping_interval,
            server.eio.ping_timeout,
            server.eio.cors_allowed_origins,
            type(server.manager),
        ),
        "root_handlers": sorted(server.handlers.get("/", {})),
        "celery": {k: repr(parts["celery"].conf[k]) for k in HOST_CELERY},
    }


@pytest.fixture
def host_redis(redis_url: str) -> str:
    """The suite's Redis, in a database of these tests' own: the suite's workers consume
    ``jobcast.io`` on database 0, and must not take (or count in) these hosts' messages."""
    return redis_url.rsplit("/", 1)[0] + "/13"


@pytest.fixture
def host(tmp_path: Path, host_redis: str) -> Iterator[dict[str, Any]]:
    default_app = celery_state.default_app
    parts = make_host(tmp_path, host_redis, with_jobcast=True)
    yield parts
    assert celery_state.default_app is default_app, "jobcast made a Celery app the default"


def test_jobcast_changes_nothing_of_the_host_app_outside_its_own(
    tmp_path: Path, host_redis: str, host: dict[str, Any]
) -> None:
    (tmp_path / "alone").mkdir()
    alone = snapshot(make_host(tmp_path / "alone", host_redis, with_jobcast=False))
    with_jobcast = snapshot(host)
    assert with_jobcast == alone
    assert set(host["socketio"].server.handlers) == {"/", "/jobcast"}
    later = Celery("later")
    later.finalize()
    assert [name for name in later.tasks if name.startswith("jobcast.")] == []
    assert not [
        k
        for k in host["app"].config
        if k.startswith("JOBCAST_") and k not in ("JOBCAST_REDIS_URL", "JOBCAST_RATE_LIMITS")
    ]


def test_host_routes_keep_their_own_errors_sessions_and_body_size(host: dict[str, Any]) -> None:
    client = host["app"].test_client()
    assert client.get("/nowhere").get_data(as_text=True) == "<h1>host 404</h1>"
    assert client.get("/boom").status_code == 418
    client.post("/login", data={"user": "ada"})
    assert client.get("/me").json == {"user": "ada"}
    two_mib = b"x" * (2 * 1024 * 1024)
    assert client.post("/upload", data=two_mib).json == {"size": len(two_mib)}
    answer = client.get("/me")
    assert "Content-Security-Policy" not in answer.headers
    assert "X-Request-ID" not in answer.headers


def test_jobcast_routes_get_jobcast_rules(host: dict[str, Any]) -> None:
    client = host["app"].test_client()
    assert client.get("/jobcast/jobs").status_code == 401  # no session user: no owner
    client.post("/login", data={"user": "ada"})
    unknown = client.get("/jobcast/nowhere")
    assert (unknown.status_code, unknown.mimetype) == (404, "application/problem+json")
    wrong_method = client.delete("/jobcast/jobs")
    assert (wrong_method.status_code, wrong_method.mimetype) == (405, "application/problem+json")
    too_big = client.post(
        "/jobcast/jobs", data=b"x" * (2 * 1024 * 1024), content_type="application/json"
    )
    assert (too_big.status_code, too_big.mimetype) == (413, "application/problem+json")
    # Flask's automatic OPTIONS answer names the route's methods, not the catch-all's.
    allow = client.options("/jobcast/jobs").headers["Allow"]
    assert set(allow.split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    listed = client.get("/jobcast/jobs")
    assert listed.status_code == 200 and "X-Request-ID" in listed.headers
    assert "Content-Security-Policy" in listed.headers


def test_a_submit_neither_commits_nor_rolls_back_the_hosts_session(host: dict[str, Any]) -> None:
    app, db, jobcast = host["app"], host["db"], host["jobcast"]
    with app.app_context():
        db.session.add(Note(text="pending"))
        submitted = jobcast.submit("host.noop", {}, owner=42)
        assert submitted.status == "queued"
        assert jobcast.get(submitted.id, owner=42) == jobcast.get(submitted.id, owner="42")
        assert db.session.new, "jobcast touched the host's pending work"
        db.session.rollback()
        assert db.session.query(Note).count() == 0
        assert jobcast.get(submitted.id, owner="42").id == submitted.id


def test_no_listener_lands_on_every_engine_or_session(host: dict[str, Any]) -> None:
    def jobcasts(listeners: Any) -> list[str]:
        return [f.__qualname__ for f in listeners if f.__module__.startswith("jobcast")]

    engine = create_engine("sqlite://")
    assert jobcasts(engine.pool.dispatch.connect) == []
    assert jobcasts(Session().dispatch.after_begin) == []
    with host["app"].app_context():
        assert jobcasts(host["db"].engine.pool.dispatch.connect) == []
        assert jobcasts(host["db"].session().dispatch.after_begin) == []


def test_host_celery_keeps_its_queue_and_jobcast_uses_its_own(
    host: dict[str, Any], host_redis: str
) -> None:
    app, celery, jobcast = host["app"], host["celery"], host["jobcast"]
    redis = Redis.from_url(host_redis)
    redis.delete("celery", "jobcast.io")
    celery.tasks["host.add"].delay(1, 2)
    with app.app_context():
        jobcast.submit("host.noop", {}, owner=f"u-{uuid.uuid4().hex[:6]}")
    assert redis.llen("celery") == 1
    assert redis.llen("jobcast.io") == 1
    redis.delete("celery", "jobcast.io")


def test_flask_jobcast_db_upgrade_migrates_jobcasts_tables_beside_the_hosts(
    tmp_path: Path, host_redis: str
) -> None:
    parts = make_host(tmp_path, host_redis, with_jobcast=False)
    app, db = parts["app"], parts["db"]
    Jobcast(app, db=db, celery=parts["celery"], socketio=parts["socketio"])
    runner = app.test_cli_runner()
    upgraded = runner.invoke(args=["jobcast", "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "jobcast tables upgraded to jobcast_0002" in upgraded.output
    with app.app_context():
        tables = set(sa_inspect(db.engine).get_table_names())
    assert {"notes", "jobcast_jobs", "jobcast_alembic_version"} <= tables
    assert "alembic_version" not in tables  # the host's own history is the host's
    current = runner.invoke(args=["jobcast", "db", "current"])
    assert current.output.strip() == "jobcast_0002"


@pytest.mark.parametrize("db_kind", ["flask-sqlalchemy", "engine", "url"])
@pytest.mark.parametrize("celery_given", [True, False], ids=["host-celery", "made-celery"])
@pytest.mark.parametrize("socketio_given", [True, False], ids=["host-socketio", "made-socketio"])
def test_every_combination_of_given_and_made_parts_runs_a_job(
    tmp_path: Path, host_redis: str, db_kind: str, celery_given: bool, socketio_given: bool
) -> None:
    parts = make_host(tmp_path, host_redis, with_jobcast=False)
    app = parts["app"]
    url = f"sqlite:///{tmp_path / 'jobcast.db'}"
    app.config["JOBCAST_DATABASE_URL"] = url
    app.config["JOBCAST_ASYNC_MODE"] = "threading"
    db = {"flask-sqlalchemy": parts["db"], "engine": create_engine(url), "url": None}[db_kind]
    jobcast = Jobcast(
        app,
        db=db,
        celery=parts["celery"] if celery_given else None,
        socketio=parts["socketio"] if socketio_given else None,
        identity=CallableIdentity(lambda: session.get("user")),
    )
    client = app.test_client()
    client.post("/login", data={"user": "ada"})
    with app.app_context():
        jobcast.create_all()
    accepted = client.post("/jobcast/jobs", json={"type": "host.noop", "params": {}})
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    job_id = accepted.json["id"]
    runtime = app.extensions["jobcast"]
    runtime.celery.tasks["jobcast.run"].apply(args=[job_id], task_id=job_id)
    assert client.get(f"/jobcast/jobs/{job_id}").json["status"] == "succeeded"
    with app.app_context():
        events = [name for name, _ in runtime.events.history(job_id)]
    assert events == ["job.queued", "job.started", "job.succeeded"]


def test_a_host_view_gets_the_apis_job_object(host: dict[str, Any]) -> None:
    app, jobcast = host["app"], host["jobcast"]
    with app.test_request_context():
        job = jobcast.submit("host.noop", {}, owner="ada")
        answer = job.to_dict()
        assert answer == jobcast.get(job.id, owner="ada").to_dict()
    client = app.test_client()
    client.post("/login", data={"user": "ada"})
    assert client.get(f"/jobcast/jobs/{job.id}").json == answer
    assert (job.id, job.type, job.status, job.progress) == (answer["id"], "host.noop", "queued", 0)


def test_jobcasts_housekeeping_goes_to_jobcasts_queue(
    host: dict[str, Any], host_redis: str
) -> None:
    celery, jobcast = host["celery"], host["jobcast"]
    celery.conf.beat_schedule = {**celery.conf.beat_schedule, **jobcast.beat_schedule()}
    redis = Redis.from_url(host_redis)
    redis.delete("celery", "jobcast.io")
    for entry in celery.conf.beat_schedule.values():  # as beat sends each entry
        celery.tasks[entry["task"]].apply_async(**entry.get("options", {}))
    assert (redis.llen("celery"), redis.llen("jobcast.io")) == (0, 3)
    redis.delete("celery", "jobcast.io")


def test_disconnect_ends_the_owners_connections_on_every_web_process(
    tmp_path: Path, host_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two apps on one Redis stand for two web processes: a logout on one ends the owner's
    # connections that the other holds, at its next sweep, and no one else's.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    here = make_host(tmp_path / "a", host_redis, with_jobcast=True)
    there = make_host(tmp_path / "b", host_redis, with_jobcast=True)
    sockets = there["app"].extensions["jobcast"].sockets
    ended: list[tuple[str, str]] = []
    monkeypatch.setattr(sockets, "end", lambda sid, reason: ended.append((sid, reason)))
    owner = f"ada-{uuid.uuid4().hex[:6]}"
    assert sockets.add("sid-ada", Grant(owner)) and sockets.add("sid-bob", Grant("bob"))
    with there["app"].app_context():
        sockets.sweep()
    assert ended == []
    with here["app"].app_context():
        here["jobcast"].disconnect(owner)
    with there["app"].app_context():
        sockets.sweep()
    assert ended == [("sid-ada", "auth.revoked")]
