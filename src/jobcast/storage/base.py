"""The seam every result-file backend fills: stage, commit, open, delete."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredFile:
    key: str
    filename: str
    size: int


class ResultStorage(Protocol):
    """Where result files live; jobs never see it, only a staging path."""

    def staging_path(self, owner_id: str, job_id: str, attempt: int, filename: str) -> Path:
        """A private, writable path for one attempt's file."""
        ...

    def commit(self, owner_id: str, job_id: str, staged: Path) -> StoredFile:
        """Publish a staged file atomically; earlier attempts' leftovers are removed."""
        ...

    def discard(self, owner_id: str, job_id: str) -> None:
        """Remove everything stored or staged for the job."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The committed file for ``key``, or None when it is gone."""
        ...

    def delete(self, key: str) -> None: ...
