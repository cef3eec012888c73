"""A command run on a database that was never migrated says what to run, in one line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from tests.conftest import TEST_SECRET_KEY, run_touchline
from touchline.cli import lacks_its_tables
from touchline.config import Settings


@pytest.mark.parametrize(
    "args", [("sync", "--once"), ("mailbox", "list", "--workspace", "Acme")], ids=["sync", "mailbox-list"]
)
def test_a_command_on_an_unmigrated_database_says_to_upgrade_it(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    ran = run_touchline(Settings(data_dir=tmp_path, secret_key=TEST_SECRET_KEY), *args)
    assert ran.returncode == 1
    assert "touchline db upgrade" in ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    assert "no such table" not in ran.stderr


def test_missing_tables_are_told_apart_from_other_database_failures() -> None:
    sqlite_missing = OperationalError("SELECT 1", {}, Exception("no such table: mailboxes"))
    postgres_missing = ProgrammingError(
        "SELECT 1", {}, psycopg.errors.UndefinedTable('relation "mailboxes" does not exist')
    )
    locked = OperationalError("SELECT 1", {}, Exception("database is locked"))
    assert lacks_its_tables(sqlite_missing)
    assert lacks_its_tables(postgres_missing)
    assert not lacks_its_tables(locked)
    assert not lacks_its_tables(ValueError("no such table"))
