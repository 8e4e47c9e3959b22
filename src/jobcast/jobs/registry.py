"""The registry of job types: ``@job("export.csv", params=ExportParams)``.

A job type is a plain function plus what the runtime needs to know about it: its parameter
model (whose JSON schema the API publishes), whether it is bound by I/O or CPU (which decides
the queue and so the worker pool), its time limit and its retry policy, and optionally a
``check``: what the params model cannot see but the server knows at submit (who the owner is,
the settings), run inside the submit request so that such a job is refused there, never accepted
only to fail in a worker. Importing this module needs no Flask app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from jobcast.errors import ParamsRefused, TransientJobError, ValidationFailed

if TYPE_CHECKING:
    from jobcast.jobs.context import JobContext

Bound = Literal["io", "cpu"]
JobFunction = Callable[["JobContext[Any]"], "dict[str, Any] | None"]
#: ``check(params, owner_id)``: raises ParamsRefused (or any ApiError) to refuse a submission.
SubmitCheck = Callable[[Any, str], None]
#: ``enabled(settings)``: whether an app with these settings runs the type at all.
Enabled = Callable[[Any], bool]


#: Queue name per kind of bound; ``jobcast worker`` runs a gevent pool on the first and a
#: prefork pool on the second.
def queue_names(prefix: str) -> dict[Bound, str]:
    """The queue of each bound under ``prefix`` (``JOBCAST_QUEUE_PREFIX``)."""
    return {"io": f"{prefix}.io", "cpu": f"{prefix}.cpu"}


QUEUES = queue_names("jobcast")


class EmptyParams(BaseModel):
    """Parameters of a job type that takes none."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class JobType:
    """One registered job type and its runtime policy."""

    name: str
    func: JobFunction
    params: type[BaseModel]
    title: str
    bound: Bound = "io"
    time_limit: float = 3600.0
    max_retries: int = 3
    retry_backoff: float = 2.0
    retry_backoff_max: float = 600.0
    retry_on: tuple[type[BaseException], ...] = (TransientJobError,)
    check: SubmitCheck | None = None
    # Whether an attempt whose worker was lost (its lease lapsed) may run again. False for work
    # that must not happen twice (an email sent, a payment made): such a job fails instead.
    retry_lost: bool = True
    # Whether an app runs the type, from its settings (llm.* need a provider); None: always.
    enabled: Enabled | None = None

    @property
    def queue(self) -> str:
        return QUEUES[self.bound]

    def validate(self, raw: Any) -> BaseModel:
        """Parse raw params; raises pydantic.ValidationError with field errors."""
        return self.params.model_validate(raw if raw is not None else {})

    def check_submit(self, params: BaseModel, owner_id: str) -> None:
        """Run ``check`` on validated params; a refusal becomes the 422 of invalid params.

        Called inside the submit request, before anything is written; needs the app context
        the check needs (settings, database).
        """
        if self.check is None:
            return
        try:
            self.check(params, owner_id)
        except ParamsRefused as exc:
            error = {
                "field": f"params.{exc.field}" if exc.field else "params",
                "message": str(exc),
                "type": exc.code,
            }
            raise ValidationFailed(str(exc), errors=[error]) from None

    def params_schema(self) -> dict[str, Any]:
        return self.params.model_json_schema()

    def retry_delay(self, attempt: int) -> float:
        """Exponential backoff after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.retry_backoff * 2 ** (attempt - 1), self.retry_backoff_max))


@dataclass
class Registry:
    """Job types by name; jobcast keeps one default registry that ``@job`` fills."""

    types: dict[str, JobType] = field(default_factory=dict)
    # The settings an app's view of the registry is for (``for_settings``); None: every type.
    settings: Any = None

    def add(self, job_type: JobType) -> None:
        if job_type.name in self.types and self.types[job_type.name].func is not job_type.func:
            raise ValueError(f"job type {job_type.name!r} is already registered")
        self.types[job_type.name] = job_type

    def for_settings(self, settings: Any) -> Registry:
        """The types an app with ``settings`` runs: the same types, read live (a type
        registered later counts too), less those whose ``enabled`` says no."""
        return Registry(self.types, settings)

    def get(self, name: str) -> JobType | None:
        found = self.types.get(name)
        return found if found is not None and self._runs(found) else None

    def names(self) -> list[str]:
        return sorted(name for name, found in self.types.items() if self._runs(found))

    def __iter__(self) -> Iterator[JobType]:
        return iter(self.types[name] for name in self.names())

    def _runs(self, job_type: JobType) -> bool:
        return self.settings is None or job_type.enabled is None or job_type.enabled(self.settings)


registry = Registry()


def job(
    name: str,
    *,
    params: type[BaseModel] = EmptyParams,
    title: str | None = None,
    bound: Bound = "io",
    time_limit: float = 3600.0,
    max_retries: int = 3,
    retry_backoff: float = 2.0,
    retry_backoff_max: float = 600.0,
    retry_on: tuple[type[BaseException], ...] = (TransientJobError,),
    check: SubmitCheck | None = None,
    retry_lost: bool = True,
    enabled: Enabled | None = None,
    into: Registry | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Register the decorated function as job type ``name``.

    ``bound="cpu"`` sends it to the process pool; the default ``"io"`` runs it on the gevent
    pool, where hundreds of sleeping or network-waiting jobs share one process.
    ``retry_on`` exceptions are retried ``max_retries`` times with exponential backoff.
    ``check(params, owner_id)`` runs at submit, inside the request, once the params are valid:
    it raises ParamsRefused (a 422 naming the field) or another ApiError (answered as it is)
    for a job that is sure to fail, and nothing is written.
    ``retry_lost=False`` declares work that must not run twice: an attempt whose worker was
    lost mid-run (it may have done the work) fails with ``worker_lost`` instead of running again.
    ``enabled(settings)`` says whether an app with those settings runs the type at all.
    """

    def register(func: JobFunction) -> JobFunction:
        (into or registry).add(
            JobType(
                name=name,
                func=func,
                params=params,
                title=title or (func.__doc__ or name).strip().splitlines()[0],
                bound=bound,
                time_limit=time_limit,
                max_retries=max_retries,
                retry_backoff=retry_backoff,
                retry_backoff_max=retry_backoff_max,
                retry_on=retry_on,
                check=check,
                retry_lost=retry_lost,
                enabled=enabled,
            )
        )
        return func

    return register


__all__ = [
    "QUEUES",
    "EmptyParams",
    "JobType",
    "Registry",
    "SubmitCheck",
    "job",
    "queue_names",
    "registry",
]
