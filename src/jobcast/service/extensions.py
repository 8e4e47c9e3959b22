"""Unbound extension objects, bound to an app by ``create_app``, and the Celery factory.

Nothing here knows about a particular app: each object keeps per-app state in
``app.extensions`` (Flask's extension pattern), so tests can build many apps in one process.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from jobcast.db.tables import NAMING_CONVENTION


class Base(DeclarativeBase):
    """The service's own tables (users, orders...), apart from jobcast's."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects keep their values after a commit instead of reloading them on next access: a running
# job reads its own row between commits, and reloading would hold a pooled connection for the
# whole job (200 concurrent jobs would need 200 connections).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address)
socketio = SocketIO()


def celery_init_app(app: Flask) -> Celery:
    """Make the Celery app for ``app``; every task runs inside ``app.app_context()``."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
