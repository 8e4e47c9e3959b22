"""Result files on local disk: ``<root>/<owner>/<job>/<filename>``.

Paths are built only from the owner's numeric id, the job's uuid and a sanitised file name, and
every resolved path is checked to stay under the root, so no parameter can steer a write or a
read elsewhere. Attempts write under ``.staging/<attempt>/`` and are moved into place by one
``os.replace``: a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path

from werkzeug.utils import secure_filename

from jobcast.storage.base import StoredFile


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _job_dir(self, owner_id: str, job_id: str) -> Path:
        return self._inside(self.root / _owner_dir(owner_id) / str(uuid.UUID(job_id)))

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"storage path {path} escapes the storage root")
        return resolved

    def staging_path(self, owner_id: str, job_id: str, attempt: int, filename: str) -> Path:
        name = secure_filename(filename) or "result"
        staging = self._job_dir(owner_id, job_id) / ".staging" / str(int(attempt))
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True, exist_ok=True)
        return staging / name

    def commit(self, owner_id: str, job_id: str, staged: Path) -> StoredFile:
        job_dir = self._job_dir(owner_id, job_id)
        staged = self._inside(staged)
        final = job_dir / staged.name
        os.replace(staged, final)
        shutil.rmtree(job_dir / ".staging", ignore_errors=True)
        for other in job_dir.iterdir():
            if other != final:
                other.unlink(missing_ok=True)
        return StoredFile(
            key=str(final.relative_to(self.root)), filename=final.name, size=final.stat().st_size
        )

    def discard(self, owner_id: str, job_id: str) -> None:
        shutil.rmtree(self._job_dir(owner_id, job_id), ignore_errors=True)

    def local_path(self, key: str) -> Path | None:
        path = self._inside(self.root / key)
        return path if path.is_file() else None

    def delete(self, key: str) -> None:
        path = self._inside(self.root / key)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty, or already gone
            path.parent.rmdir()


def _owner_dir(owner: str) -> str:
    """A directory name for an owner: a numeric id as itself, any other string by its hash, so
    no owner string can name a path of its choosing."""
    if owner.isascii() and owner.isdigit() and len(owner) <= 20:
        return owner
    return "h-" + hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]
