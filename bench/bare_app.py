"""The reference for ``bench submit``: a bare Flask route that calls ``.delay()`` on a no-op
Celery task, on the same Redis as the stack (``BENCH_REDIS_URL``), under the same gunicorn
worker class. ``gunicorn bench.bare_app:app``; nothing consumes its queue during a run.
"""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

celery = Celery("bench-bare", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
celery.conf.task_default_queue = "bench-bare"
app = Flask("bench-bare")


@celery.task(name="bench.noop")
def noop() -> None:
    """Does nothing: what is measured is the route and the broker publish."""


@app.post("/delay")
def delay() -> ResponseReturnValue:
    result = noop.delay()
    return jsonify(id=result.id), 202
