"""jobcast: background jobs for Flask with Celery workers and live progress over Socket.IO."""

from jobcast.app import create_app
from jobcast.errors import JobCancelled, JobError, TransientJobError
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import JobType, job, registry

__all__ = [
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobType",
    "TransientJobError",
    "create_app",
    "job",
    "registry",
]
