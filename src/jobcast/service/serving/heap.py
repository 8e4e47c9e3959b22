"""Keep the garbage collector's full passes short in long-running processes.

A web or worker process imports Flask, SQLAlchemy, Celery and the rest and builds the app:
hundreds of thousands of objects that live as long as the process. Every full (generation 2)
collection walked all of them: 30-160 ms with the whole process stopped, a pause every live
event of that process waited through (the p99 tail of ``bench latency``, docs/performance.md).
Freezing them once the process is ready moves them out of the collector's sight (CPython's
``gc.freeze``); later objects are collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what start-up left behind, then exempt everything still alive from later
    collections. Call once, when the process is ready to serve."""
    gc.collect()
    gc.freeze()
