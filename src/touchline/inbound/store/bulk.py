"""Statements that write many rows at once, the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

T = TypeVar("T")

# Far below SQLite's limit on bound parameters (32,766) and PostgreSQL's (65,535).
IN_LIST_SIZE = 5000


def chunks(values: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def table_of(model: Any) -> Table:
    """A mapped class's table, for statements that skip the ORM's per-object work."""
    return cast(Table, model.__table__)


def insert_ignoring_duplicates(session: Session, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` in one multi-row statement; rows that would break a unique constraint (written by
    another worker meanwhile) are left out instead of failing the transaction."""
    if rows:
        session.execute(_insert_ignoring_duplicates(session, model), list(rows))


def insert_returning_inserted(
    session: Session, model: Any, rows: Sequence[Mapping[str, Any]], column: str
) -> set[Any]:
    """As `insert_ignoring_duplicates`, and `column` of the rows it inserted: a row left out was
    written by another worker meanwhile, which the caller learns without reading anything back."""
    if not rows:
        return set()
    statement = _insert_ignoring_duplicates(session, model)
    return set(session.scalars(statement.returning(table_of(model).c[column]), list(rows)))


def _insert_ignoring_duplicates(session: Session, model: Any) -> Any:
    table = table_of(model)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def move_forward(session: Session, model: Any, column: str, moments: Mapping[Any, datetime]) -> None:
    """Set `column` of each row (by id) to its moment, only where that is later than what is stored.

    One statement for all rows, compared in the database: nothing is loaded, and two workers writing
    the same row at once cannot move it backwards.
    """
    if not moments:
        return
    table = table_of(model)
    session.execute(
        update(table)
        .where(
            table.c.id == bindparam("row_id"),
            or_(table.c[column].is_(None), table.c[column] < bindparam("moment")),
        )
        .values({column: bindparam("moment")}),
        [{"row_id": row_id, "moment": moment} for row_id, moment in moments.items()],
    )
