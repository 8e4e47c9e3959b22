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


@signals.worker_init.connect
@signals.worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    """Before the pool starts (prefork children inherit the frozen objects, and their pages stay
    shared), and once the worker is ready (the gevent pool runs in this process)."""
    freeze_startup_objects()
