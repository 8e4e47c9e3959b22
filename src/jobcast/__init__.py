"""jobcast: background jobs for Flask with Celery workers and live progress over Socket.IO.

Names are imported on first use (PEP 562), so ``import jobcast.jobs.states`` and the other core
modules load neither Flask nor the service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobcast.errors import JobCancelled, JobError, ParamsRefused, TransientJobError
    from jobcast.extension import Jobcast
    from jobcast.jobs.context import JobContext
    from jobcast.jobs.registry import JobType, job, registry
    from jobcast.service.app import create_app

_WHERE = {
    "Jobcast": "jobcast.extension",
    "JobContext": "jobcast.jobs.context",
    "JobType": "jobcast.jobs.registry",
    "job": "jobcast.jobs.registry",
    "registry": "jobcast.jobs.registry",
    "JobCancelled": "jobcast.errors",
    "JobError": "jobcast.errors",
    "ParamsRefused": "jobcast.errors",
    "TransientJobError": "jobcast.errors",
    "create_app": "jobcast.service.app",
}

__all__ = [
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobType",
    "Jobcast",
    "ParamsRefused",
    "TransientJobError",
    "create_app",
    "job",
    "registry",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'jobcast' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
