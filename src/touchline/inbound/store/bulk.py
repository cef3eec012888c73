"""Statements that write many rows at once, the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Table, bindparam, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import psycopg

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


class DriverRows:
    """Rows of fixed columns handed straight to the database's driver: COPY on PostgreSQL, the
    driver's executemany elsewhere. For writes of many rows at once, where SQLAlchemy's work per
    value (its bind processing through each type, per row) costs more than the database's own.

    Each value is converted exactly as its column's type converts it for this dialect (the type's
    bind processor, looked up once, also for None, as SQLAlchemy does). A value that is the very
    object the row before held in that column (the workspace, the sender, the moment a chunk was
    made) is not converted again. The columns named in `remember` keep every value's converted form,
    across calls, up to `REMEMBERED_VALUES` of them (the tracking writer's link ids: a few values,
    each repeated by every hit of its link). No column defaults apply: every row gives every column."""

    def __init__(
        self, table: Table, columns: Sequence[str], dialect: Dialect, *, remember: Collection[str] = ()
    ) -> None:
        preparer = dialect.identifier_preparer
        names = ", ".join(preparer.quote(column) for column in columns)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([mark] * len(columns))
        self.columns = tuple(columns)
        self._postgresql = dialect.name == "postgresql"
        # Names from the table's own metadata only: every value goes to the driver as a parameter.
        self._insert = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({marks})"  # noqa: S608
        self._copy = f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
        processors = (
            table.c[column].type.dialect_impl(dialect).bind_processor(dialect) for column in columns
        )
        self._processors: list[tuple[int, Callable[[Any], Any], dict[object, object] | None]] = [
            (index, process, {} if columns[index] in remember else None)
            for index, process in enumerate(processors)
            if process is not None
        ]

    def encoded(self, rows: Iterable[Sequence[object]]) -> list[list[object]]:
        """The rows with each value in the database's form (each row in the order of `columns`)."""
        processors = self._processors
        last_given: list[object] = [_NOTHING] * len(processors)
        last_encoded: list[object] = [None] * len(processors)
        encoded: list[list[object]] = []
        for row in rows:
            values = list(row)
            for slot, (index, process, remembered) in enumerate(processors):
                value = values[index]
                if value is last_given[slot]:
                    values[index] = last_encoded[slot]
                    continue
                last_given[slot] = value
                if remembered is None:
                    values[index] = last_encoded[slot] = process(value)
                    continue
                known = remembered.get(value, _NOTHING)
                if known is _NOTHING:
                    if len(remembered) >= REMEMBERED_VALUES:
                        remembered.clear()
                    known = remembered[value] = process(value)
                values[index] = last_encoded[slot] = known
            encoded.append(values)
        return encoded

    def write(self, connection: Connection, rows: Sequence[Sequence[object]]) -> None:
        """Add rows already `encoded` to the connection's transaction (on PostgreSQL, in autocommit,
        the COPY is a transaction of its own)."""
        if not rows:
            return
        if self._postgresql:
            driver = cast("psycopg.Connection[Any]", connection.connection.dbapi_connection)
            with driver.cursor() as cursor, cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if not connection.in_transaction():
            connection.exec_driver_sql(self._insert, [tuple(row) for row in rows])
            return
        # Begun (its BEGIN sent), so the driver's own cursor writes inside it: SQLAlchemy's statement
        # handling cost a third of a small batch's insert.
        inserting = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            inserting.executemany(self._insert, rows)
        finally:
            inserting.close()


REMEMBERED_VALUES = 100_000
"""Converted values a `remember` column keeps at most; then it starts again."""
_NOTHING: Any = object()
"""No value yet: unlike None, never a column's value."""
