"""Writers at once: mail imports, syncs, a CSV import and the log address's worker running together
store everything once, and none of them fails with "database is locked" (issue 15, items 5 and 12).

On SQLite a transaction that read before it wrote used to fail at once when another connection had
committed in between; writing transactions now take the write lock when they begin, and wait for it.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.receive.conftest import LOCAL_RELAY
from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, dovecot, message, world
from touchline.db import session_scope
from touchline.inbound.importing import import_mail
from touchline.inbound.receive import spool
from touchline.inbound.receive.service import Envelope
from touchline.models import Contact, Email, QuarantinedMessage, SpooledMessage
from touchline.workspace import importing
from touchline.workspace import service as workspace_service

__all__ = ["dovecot", "world"]  # the sync scenario's fixtures, used here as they are

NOW = dt.datetime.now(dt.UTC)
CSV_ROWS = 10
WAIT = 120  # seconds a thread may take before the test gives up on it (a hang, never a pause)


def _tree(root: Path, name: str, count: int) -> tuple[Path, set[str]]:
    """A folder of `count` customer messages, one file each; and their Message-IDs."""
    folder = root / name / "inbox"
    folder.mkdir(parents=True)
    ids = set()
    for number in range(count):
        message_id = f"{name}.{number}@{CUSTOMER}"
        (folder / f"{number}.eml").write_bytes(message(f"{name} {number}", message_id=f"<{message_id}>"))
        ids.add(message_id)
    return root / name, ids


def _run_together(jobs: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Run every job in a thread of its own, all released at once; every job's result, or the
    first error raised."""
    start = threading.Barrier(len(jobs))
    results: dict[str, object] = {}
    errors: dict[str, BaseException] = {}

    def run(name: str, job: Callable[[], object]) -> None:
        start.wait(timeout=WAIT)
        try:
            results[name] = job()
        except BaseException as error:
            errors[name] = error

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not [thread.name for thread in threads if thread.is_alive()], "a writer never finished"
    assert not errors, {name: repr(error) for name, error in errors.items()}
    return results


def _email_count(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> dict[str | None, int]:
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Email.message_id, func.count())
            .where(Email.workspace_id == workspace_id)
            .group_by(Email.message_id)
        )
        return {row[0]: row[1] for row in rows}


def test_mail_imports_syncs_a_csv_import_and_the_log_worker_at_once(world: SyncWorld, tmp_path: Path) -> None:
    """Two mail imports (sharing some messages), two syncs of one workspace (sharing some
    messages), a CSV import and the log address's worker, all at once: nothing lost, nothing
    stored twice, no lock error."""
    operator = world.operator
    importer, _ = world.add_user("importer")
    mailboxes = []
    synced_ids: set[str] = set()
    for local in ("sam", "kim"):
        user_id, imap = world.add_user(local)
        for number in range(6):
            message_id = f"{local}.{number}@{CUSTOMER}"
            raw = message(
                f"{local} {number}", to=f"{local} <{local}@{INTERNAL}>", message_id=f"<{message_id}>"
            )
            world.dovecot.append(imap, "INBOX", raw, received_at=NOW - dt.timedelta(days=1))
            synced_ids.add(message_id)
        # A message both mailboxes hold: one email, two holders.
        shared = message("shared", to=f"sam <sam@{INTERNAL}>", message_id=f"<shared@{CUSTOMER}>")
        world.dovecot.append(imap, "INBOX", shared, received_at=NOW - dt.timedelta(days=1))
        mailboxes.append(world.connect(user_id, imap))
    synced_ids.add(f"shared@{CUSTOMER}")

    first, first_ids = _tree(tmp_path, "first", 30)
    second, second_ids = _tree(tmp_path, "second", 30)
    for number in range(10):  # the same messages in both exports
        raw = message(f"both {number}", message_id=f"<both.{number}@{CUSTOMER}>")
        (first / "inbox" / f"both{number}.eml").write_bytes(raw)
        (second / "inbox" / f"both{number}.eml").write_bytes(raw)
        first_ids.add(f"both.{number}@{CUSTOMER}")

    logger = "logger@" + INTERNAL
    with session_scope(world.sessions) as session:
        workspace_service.add_user(session, operator, logger, role="Member")
    logged_ids = {f"logged.{number}@{INTERNAL}" for number in range(20)}
    envelope = Envelope("smtp", logger, "127.0.0.1")
    with session_scope(world.sessions) as session:
        accepted = spool.accept_batch(
            session,
            [
                spool.Offered(
                    world.workspace_id,
                    message(
                        f"logged {message_id}",
                        sender=f"Logger <{logger}>",
                        to=f"Jane <jane.doe@{CUSTOMER}>",
                        message_id=f"<{message_id}>",
                    ),
                    envelope,
                )
                for message_id in sorted(logged_ids)
            ],
        )
    assert {result.outcome for result in accepted} == {"accepted"}

    # Small: an import holds SQLite's write lock from its first row to its commit (all or nothing).
    contacts_csv = "email,name,company\n" + "".join(
        f"person{number}@{CUSTOMER},Person {number},Customer\n" for number in range(CSV_ROWS)
    )

    results = _run_together(
        {
            "import first": lambda: import_mail(world.sessions, world.workspace_id, importer, first),
            "import second": lambda: import_mail(world.sessions, world.workspace_id, importer, second),
            "sync sam": lambda: world.sync(mailboxes[0]),
            "sync kim": lambda: world.sync(mailboxes[1]),
            "csv import": lambda: importing.run_import(
                world.sessions, operator, "contacts", contacts_csv.encode()
            ),
            "log worker": lambda: spool.log_spooled(world.sessions, checks=LOCAL_RELAY),
        }
    )

    for name in ("sync sam", "sync kim"):
        assert results[name].error is None, results[name]
    logged: Any = results["log worker"]
    assert (logged.logged, logged.left) == (len(logged_ids), 0)
    csv_report: Any = results["csv import"]
    assert (csv_report.created, csv_report.errors) == (CSV_ROWS, [])

    expected = first_ids | second_ids | synced_ids | logged_ids
    assert _email_count(world.sessions, world.workspace_id) == dict.fromkeys(expected, 1)
    with session_scope(world.sessions) as session:
        people = session.scalar(
            select(func.count()).select_from(Contact).where(Contact.email.like("person%"))
        )
        assert people == CSV_ROWS
        assert session.scalar(select(func.count()).select_from(QuarantinedMessage)) == 0
        assert session.scalar(select(func.count()).select_from(SpooledMessage)) == 0


@pytest.fixture
def paused_writer(engine: Engine) -> Iterator[Callable[[str], threading.Event]]:
    """`pause(thread_name)`: that thread stops before its first write, until the event returned is
    set; the test can see it has stopped through `paused_writer.stopped`."""
    pauses: dict[str, threading.Event] = {}
    stopped = threading.Event()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        name = threading.current_thread().name
        release = pauses.get(name)
        if release is not None and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            del pauses[name]
            stopped.set()
            assert release.wait(timeout=WAIT), f"{name} was never released"

    def pause(name: str) -> threading.Event:
        pauses[name] = threading.Event()
        return pauses[name]

    pause.stopped = stopped  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", before)
    yield pause
    event.remove(engine, "before_cursor_execute", before)


def test_a_mail_import_that_read_before_another_committed_still_writes(
    world: SyncWorld, tmp_path: Path, engine: Engine, paused_writer: Callable[[str], threading.Event]
) -> None:
    """The first import has read what it needs and is about to write when the second import
    commits a batch. Deferred, the first one's snapshot was then stale and SQLite refused its write
    at once ("database is locked"); begun IMMEDIATE, it holds the lock and the second waits."""
    importer, _ = world.add_user("importer")
    first, first_ids = _tree(tmp_path, "first", 3)
    second, second_ids = _tree(tmp_path, "second", 3)
    release = paused_writer("import first")
    second_began = threading.Event()

    def note_begin_or_commit(conn: Any, *args: Any) -> None:
        if threading.current_thread().name == "import second":
            second_began.set()
            release.set()  # let the first import go on once the second is under way

    # The second import is under way when it asks for the write lock (IMMEDIATE), or at the latest
    # when it commits (a deferred transaction, which never waits for the first).
    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() == "BEGIN IMMEDIATE":
            note_begin_or_commit(_conn)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", note_begin_or_commit)
    errors: dict[str, BaseException] = {}

    def run(path: Path) -> None:
        try:
            import_mail(world.sessions, world.workspace_id, importer, path)
        except BaseException as error:
            errors[threading.current_thread().name] = error

    try:
        one = threading.Thread(target=run, args=(first,), name="import first")
        one.start()
        assert paused_writer.stopped.wait(timeout=WAIT)  # type: ignore[attr-defined]
        two = threading.Thread(target=run, args=(second,), name="import second")
        two.start()
        for thread in (one, two):
            thread.join(timeout=WAIT)
            assert not thread.is_alive()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "commit", note_begin_or_commit)
    assert second_began.is_set()
    assert not errors, {name: repr(error) for name, error in errors.items()}
    assert _email_count(world.sessions, world.workspace_id) == dict.fromkeys(first_ids | second_ids, 1)
