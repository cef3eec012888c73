"""Files only their owner may read: the database, the job queue and the encryption key hold secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600, or take group and others' access away if it exists.

    SQLite creates a database's -wal and -shm files with the database file's mode, so a database
    file made private before SQLite first opens it keeps its companions private too.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        for existing in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))):
            if existing.exists() and stat.S_IMODE(existing.stat().st_mode) & 0o077:
                existing.chmod(PRIVATE_FILE_MODE)
    else:
        os.close(descriptor)
