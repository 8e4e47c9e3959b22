"""The module Celery imports: ``celery -A jobcast.worker worker``.

Building the app here, at import time, is deliberate and happens nowhere else (like Flask's
``make_celery.py``): the worker needs one app whose context every task runs in. Celery looks
for ``app`` first, so that name is the Celery app; the Flask app is ``flask_app``.
"""

from typing import Any

from celery import Celery, signals

from jobcast.app import create_app
from jobcast.heap import freeze_startup_objects

flask_app = create_app()
app: Celery = flask_app.extensions["celery"]
celery = app


@signals.worker_ready.connect
@signals.worker_process_init.connect
def _freeze_startup_objects(**_: Any) -> None:
    """The pool's process (the worker itself under gevent, each child under prefork) is ready."""
    freeze_startup_objects()
