"""`insert_rows`, `insert_ignoring_duplicates` and `insert_returning_inserted` store what
SQLAlchemy's own insert stores (on PostgreSQL they send one statement of column arrays instead): the
Python-side defaults of the columns a row leaves out, JSON None as JSON null. The last two store
nothing for a row whose key is taken, by an earlier row or by one in the same batch; `insert_rows`
refuses the whole batch then. A value too long for its column is refused, never cut."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Engine, MetaData, String, Table, Text, Uuid, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.inbound.store.bulk import insert_ignoring_duplicates, insert_returning_inserted, insert_rows
from touchline.models.base import UTCDateTime

MOMENT = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)
PROBE = Table(
    "insert_ignoring_probe",
    MetaData(),
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("key", String(10), unique=True, nullable=False),
    Column("note", Text, default=""),
    Column("tags", JSON, default=list),
    Column("extra", JSON),
    Column("flag", Boolean, default=False),
    Column("at", UTCDateTime, default=lambda: MOMENT),
)


class _Model:
    """What the helpers take: a mapped class, read for its table."""

    __table__ = PROBE


@pytest.fixture
def probe(engine: Engine) -> Iterator[Engine]:
    PROBE.create(engine)
    try:
        yield engine
    finally:
        PROBE.drop(engine)


def _raw(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each row as the database holds it (no result processing), by key, without its id."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT * FROM insert_ignoring_probe").mappings().all()
    return {row["key"]: {name: value for name, value in row.items() if name != "id"} for row in rows}


def test_left_out_columns_get_their_defaults_and_values_are_stored_as_sqlalchemy_stores_them(
    probe: Engine, sessions: sessionmaker[Session]
) -> None:
    with probe.begin() as connection:
        connection.execute(
            insert(PROBE), [{"key": "core-a", "extra": None}, {"key": "core-b", "extra": {"n": 1}}]
        )
    with session_scope(sessions) as session:
        insert_ignoring_duplicates(session, _Model, [{"key": "ours-a", "extra": None}])
        insert_ignoring_duplicates(session, _Model, [{"key": "ours-b", "extra": {"n": 1}}])
        insert_rows(
            session, _Model, [{"key": "plain-a", "extra": None}, {"key": "plain-b", "extra": {"n": 1}}]
        )
    stored = _raw(probe)
    assert stored["ours-a"] == {**stored["core-a"], "key": "ours-a"}
    assert stored["ours-b"] == {**stored["core-b"], "key": "ours-b"}
    assert stored["plain-a"] == {**stored["core-a"], "key": "plain-a"}
    assert stored["plain-b"] == {**stored["core-b"], "key": "plain-b"}
    with probe.connect() as connection:
        read = {row.key: row for row in connection.execute(select(PROBE))}
    assert (read["ours-a"].tags, read["ours-a"].extra, read["ours-a"].note) == ([], None, "")
    assert (read["ours-b"].extra, read["ours-b"].flag, read["ours-b"].at) == ({"n": 1}, False, MOMENT)
    assert len({row.id for row in read.values()}) == 6  # each row its own default id


def test_rows_whose_key_is_taken_are_left_out_and_only_the_inserted_are_returned(
    probe: Engine, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        first = insert_returning_inserted(
            session, _Model, [{"key": "a", "note": "first"}, {"key": "b", "note": "first"}], "key"
        )
    assert first == {"a", "b"}
    with session_scope(sessions) as session:
        again = insert_returning_inserted(
            session,
            _Model,
            [{"key": "b", "note": "second"}, {"key": "c", "note": "second"}, {"key": "c", "note": "twice"}],
            "key",
        )
        insert_ignoring_duplicates(
            session, _Model, [{"key": "a", "note": "third"}, {"key": "d", "note": "third"}]
        )
    assert again == {"c"}
    assert {key: row["note"] for key, row in _raw(probe).items()} == {
        "a": "first",
        "b": "first",
        "c": "second",
        "d": "third",
    }


def test_a_plain_insert_with_a_taken_key_stores_nothing_of_its_batch(
    probe: Engine, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        insert_rows(session, _Model, [{"key": "a"}])
    with pytest.raises(IntegrityError), session_scope(sessions) as session:
        insert_rows(session, _Model, [{"key": "b"}, {"key": "a"}])
    assert list(_raw(probe)) == ["a"]


def test_a_value_too_long_for_its_column_is_refused_where_the_database_checks_lengths(
    probe: Engine, sessions: sessionmaker[Session]
) -> None:
    too_long = "k" * 11
    if probe.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="too long"), session_scope(sessions) as session:
            insert_ignoring_duplicates(session, _Model, [{"key": too_long}])
        assert _raw(probe) == {}
    else:  # SQLite keeps any length, as its own insert does
        with session_scope(sessions) as session:
            insert_ignoring_duplicates(session, _Model, [{"key": too_long}])
        assert list(_raw(probe)) == [too_long]
