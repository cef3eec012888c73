"""Engines, sessions and the one place that commits: `session_scope()`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from touchline.kit.files import create_private_file

AFTER_COMMIT_KEY = "touchline.after_commit"
# The execution option `session_scope` sets on its connection: this transaction will write.
WRITES_OPTION = "touchline_writes"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(Path(database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            # The driver would begin a transaction only before a write, after the reads that came
            # first, and a savepoint taken before it would commit on release. SQLAlchemy's recipe
            # for pysqlite: the driver begins nothing, and `_sqlite_begin` begins every transaction.
            dbapi_connection.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_begin(connection: Connection) -> None:
    """Begin the transaction SQLAlchemy is starting on a SQLite connection.

    A transaction that will write takes the write lock at once (`BEGIN IMMEDIATE`), waiting for it
    up to the busy timeout. A deferred transaction that reads first and writes later must upgrade
    its lock; if another connection committed in between, its snapshot is stale and SQLite fails the
    write at once with "database is locked", without waiting. Reading sessions keep a plain `BEGIN`,
    which never waits for a writer (WAL).
    """
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITES_OPTION) else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed; dropped on rollback."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


def releasing_a_savepoint(session: Session) -> bool:
    """Whether the `after_commit` event being handled is a savepoint's release: SQLAlchemy reports
    that as a commit too, but nothing is committed until the transaction around it is."""
    return session.in_nested_transaction()


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if releasing_a_savepoint(session):
        return
    callbacks = session.info.pop(AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(AFTER_COMMIT_KEY, None)


_ANSWERING_A_READ: ContextVar[bool] = ContextVar("touchline_answering_a_read", default=False)


@contextmanager
def answering_a_read() -> Iterator[None]:
    """Marks work done to answer a GET or HEAD request: its `session_scope`s begin as plain deferred
    transactions on SQLite, so that showing a page never queues behind a long writer (a whole CSV
    import holds the write lock to its end). Such requests read; the few that write (an OAuth
    callback) take the lock when they first write, as every transaction did before writes began
    IMMEDIATE."""
    token = _ANSWERING_A_READ.set(True)
    try:
        yield
    finally:
        _ANSWERING_A_READ.reset(token)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The owner of a transaction: commits on success, rolls back on error. Services never commit.

    Its transaction is a writing one: on SQLite it holds the write lock from its first statement to
    its end (see `_sqlite_begin`), except while `answering_a_read`; reading code that never commits
    uses a plain `factory()` session.
    """
    session = factory(execution_options={WRITES_OPTION: not _ANSWERING_A_READ.get()})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def open_transaction(session: Session) -> None:
    """Make sure the database transaction is open before a savepoint is taken.

    A SAVEPOINT taken outside a transaction would be a transaction of its own, committed on release
    apart from the caller's. Every engine from `make_engine` begins its transactions itself (on SQLite
    too, see `_sqlite_begin`), so asking for the session's connection is enough.
    """
    session.connection()
