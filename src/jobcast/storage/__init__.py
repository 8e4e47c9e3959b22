"""Result files: a narrow storage protocol and the local-disk backend."""

from jobcast.storage.base import ResultStorage, StoredFile
from jobcast.storage.local import LocalStorage

__all__ = ["LocalStorage", "ResultStorage", "StoredFile"]
