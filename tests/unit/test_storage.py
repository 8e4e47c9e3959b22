"""LocalStorage: staged writes published atomically, and no path that leaves the root."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from jobcast.config import Settings
from jobcast.errors import ConfigError
from jobcast.storage import LocalStorage, make_storage

OWNER = "7"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "results")


@pytest.fixture
def job_id() -> str:
    return str(uuid.uuid4())


def _stage(storage: LocalStorage, job_id: str, content: bytes, *, attempt: int = 1) -> Path:
    path = storage.staging_path(OWNER, job_id, attempt, "report.csv")
    path.write_bytes(content)
    return path


def test_staged_file_is_invisible_until_committed(storage: LocalStorage, job_id: str) -> None:
    _stage(storage, job_id, b"half written")
    key = f"{OWNER}/{job_id}/report.csv"
    assert storage.local_path(key) is None


def test_commit_moves_the_staged_file_into_place_by_rename(
    storage: LocalStorage, job_id: str
) -> None:
    staged = _stage(storage, job_id, b"a,b\n1,2\n")
    inode = staged.stat().st_ino
    stored = storage.commit(OWNER, job_id, staged)
    assert stored.key == f"{OWNER}/{job_id}/report.csv"
    assert (stored.filename, stored.size) == ("report.csv", 8)
    final = storage.local_path(stored.key)
    assert final is not None and final.read_bytes() == b"a,b\n1,2\n"
    # Same inode: one rename, so a reader sees the old state or the whole new file.
    assert final.stat().st_ino == inode
    assert not staged.exists()
    assert not (storage.root / str(OWNER) / job_id / ".staging").exists()


def test_commit_removes_earlier_attempts_leftovers(storage: LocalStorage, job_id: str) -> None:
    first = storage.commit(OWNER, job_id, _stage(storage, job_id, b"first"))
    _stage(storage, job_id, b"abandoned", attempt=2)
    staged = storage.staging_path(OWNER, job_id, 3, "other.csv")
    staged.write_bytes(b"third")
    stored = storage.commit(OWNER, job_id, staged)
    assert storage.local_path(first.key) is None
    assert sorted(p.name for p in (storage.root / str(OWNER) / job_id).iterdir()) == ["other.csv"]
    final = storage.local_path(stored.key)
    assert final is not None and final.read_bytes() == b"third"


def test_staging_again_for_the_same_attempt_starts_empty(
    storage: LocalStorage, job_id: str
) -> None:
    old = storage.staging_path(OWNER, job_id, 1, "old.csv")
    old.write_bytes(b"stale")
    storage.staging_path(OWNER, job_id, 1, "new.csv")
    assert not old.exists()


def test_discard_removes_staged_and_committed_files(storage: LocalStorage, job_id: str) -> None:
    stored = storage.commit(OWNER, job_id, _stage(storage, job_id, b"done"))
    _stage(storage, job_id, b"in progress", attempt=2)
    storage.discard(OWNER, job_id)
    assert storage.local_path(stored.key) is None
    assert not (storage.root / str(OWNER) / job_id).exists()


def test_discard_of_a_job_with_no_files_is_harmless(storage: LocalStorage, job_id: str) -> None:
    storage.discard(OWNER, job_id)


def test_delete_removes_the_file_and_its_empty_directory(
    storage: LocalStorage, job_id: str
) -> None:
    stored = storage.commit(OWNER, job_id, _stage(storage, job_id, b"done"))
    storage.delete(stored.key)
    storage.delete(stored.key)  # twice is fine
    assert storage.local_path(stored.key) is None
    assert not (storage.root / str(OWNER) / job_id).exists()


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("/etc/passwd", "etc_passwd"),
        ("..", "result"),
        ("", "result"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("ok name.csv", "ok_name.csv"),
    ],
)
def test_file_names_cannot_steer_the_path(
    storage: LocalStorage, job_id: str, filename: str, expected: str
) -> None:
    path = storage.staging_path(OWNER, job_id, 1, filename)
    assert path.name == expected
    assert path.parent == storage.root / str(OWNER) / job_id / ".staging" / "1"


@pytest.mark.parametrize("bad_job_id", ["../../etc", "..", "not-a-uuid", ""])
def test_job_ids_must_be_uuids(storage: LocalStorage, bad_job_id: str) -> None:
    with pytest.raises(ValueError):
        storage.staging_path(OWNER, bad_job_id, 1, "x.csv")
    with pytest.raises(ValueError):
        storage.discard(OWNER, bad_job_id)


@pytest.mark.parametrize("key", ["../outside.txt", "../../etc/passwd", "/etc/passwd", "7/../.."])
def test_keys_outside_the_root_are_rejected(storage: LocalStorage, key: str) -> None:
    with pytest.raises(ValueError, match="escapes"):
        storage.local_path(key)
    with pytest.raises(ValueError, match="escapes"):
        storage.delete(key)


def test_delete_outside_the_root_leaves_the_file_alone(
    storage: LocalStorage, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with pytest.raises(ValueError):
        storage.delete("../victim.txt")
    assert victim.read_text() == "keep me"


def test_a_symlink_out_of_the_root_is_not_followed(
    storage: LocalStorage, job_id: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    job_dir = storage.root / str(OWNER) / job_id
    job_dir.mkdir(parents=True)
    os.symlink(secret, job_dir / "link.csv")
    with pytest.raises(ValueError):
        storage.local_path(f"{OWNER}/{job_id}/link.csv")


def test_commit_refuses_a_staged_path_outside_the_root(
    storage: LocalStorage, job_id: str, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("x")
    with pytest.raises(ValueError):
        storage.commit(OWNER, job_id, outside)
    assert outside.exists()


def test_the_backend_is_chosen_by_setting(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path, storage_backend="local")
    assert isinstance(make_storage(settings), LocalStorage)
    custom = Settings(storage_backend="tests.unit.test_storage:RecordingStorage")
    assert isinstance(make_storage(custom), RecordingStorage)
    with pytest.raises(ConfigError, match="JOBCAST_STORAGE_BACKEND"):
        make_storage(Settings(storage_backend="nowhere.to:Nothing"))


class RecordingStorage(LocalStorage):
    """A backend of an app's own, built from the settings."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.storage_dir)


def test_an_owner_that_is_not_a_number_gets_a_hashed_directory(storage: LocalStorage) -> None:
    job_id = str(uuid.uuid4())
    path = storage.staging_path("../../etc", job_id, 1, "a.csv")
    assert ".." not in path.relative_to(storage.root).parts
    assert path.relative_to(storage.root).parts[0].startswith("h-")
