"""The data folder and the files that hold secrets are readable by their owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from touchline.config import Settings
from touchline.db import make_engine
from touchline.worker.queue import Queue


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """Most systems' umask, under which files are created 0644 unless asked otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_fresh_data_folder_and_its_files_are_private(tmp_path: Path, usual_umask: None) -> None:
    settings = Settings(data_dir=tmp_path / "data", in_process_worker=False)
    settings.ensure_data_dir()
    assert settings.secret_keys  # generated into the data folder
    engine = make_engine(settings.resolved_database_url)
    queue = Queue(settings)
    try:
        with engine.begin() as connection:  # WAL: the -wal and -shm files appear with the first write
            connection.execute(text("CREATE TABLE probe (id INTEGER)"))
            assert queue.pending_count() == 0
            files = sorted(path.name for path in settings.data_dir.iterdir())
            modes = {name: mode(settings.data_dir / name) for name in files}
    finally:
        queue.close()
        engine.dispose()
    assert mode(settings.data_dir) == 0o700
    assert {"touchline.db", "touchline.db-wal", "touchline.db-shm", "queue.db", "secret.key"} <= set(files)
    assert modes == dict.fromkeys(files, 0o600)


def test_existing_database_files_are_made_private(tmp_path: Path, usual_umask: None) -> None:
    database = tmp_path / "touchline.db"
    for path in (database, tmp_path / "touchline.db-wal"):
        path.touch()
        path.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == mode(tmp_path / "touchline.db-wal") == 0o600
