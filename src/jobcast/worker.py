"""The module Celery imports: ``celery -A jobcast.worker worker``.

Building the app here, at import time, is deliberate and happens nowhere else (like Flask's
``make_celery.py``): the worker needs one app whose context every task runs in. Celery looks
for ``app`` first, so that name is the Celery app; the Flask app is ``flask_app``.
"""

from celery import Celery

from jobcast.app import create_app

flask_app = create_app()
app: Celery = flask_app.extensions["celery"]
celery = app
