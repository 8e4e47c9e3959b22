"""Result files: a narrow storage protocol, its backends, and the one chosen by setting."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from jobcast.errors import ConfigError
from jobcast.storage.base import ResultStorage, StoredFile
from jobcast.storage.local import LocalStorage

if TYPE_CHECKING:
    from jobcast.config import Settings

__all__ = ["LocalStorage", "ResultStorage", "StoredFile", "make_storage"]


def make_storage(settings: Settings) -> ResultStorage:
    """The backend ``JOBCAST_STORAGE_BACKEND`` names: ``local`` (files under
    ``JOBCAST_STORAGE_DIR``), or ``package.module:Class``, built with the settings."""
    name = settings.storage_backend
    if name == "local":
        return LocalStorage(settings.storage_dir)
    module, _, attr = name.partition(":")
    try:
        backend = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(
            f"JOBCAST_STORAGE_BACKEND={name!r}: expected 'local' or 'package.module:Class'"
        ) from None
    storage: ResultStorage = backend(settings)
    return storage
