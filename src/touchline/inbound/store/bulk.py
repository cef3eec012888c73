"""Statements that write many rows at once, the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Table, bindparam, or_, update
from sqlalchemy.dialects import sqlite
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


def insert_rows(session: Session, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` in one statement (one array per column on PostgreSQL, `UnnestedInsert`)."""
    if not rows:
        return
    table = table_of(model)
    if session.get_bind().dialect.name == "postgresql":
        _postgresql_insert(session, table, rows, ignore_duplicates=False, returning=None)
        return
    session.execute(table.insert(), list(rows))


def insert_ignoring_duplicates(session: Session, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` in one statement; rows that would break a unique constraint (written by another
    worker meanwhile) are left out instead of failing the transaction."""
    if rows:
        _insert_ignoring_duplicates(session, table_of(model), rows, None)


def insert_returning_inserted(
    session: Session, model: Any, rows: Sequence[Mapping[str, Any]], column: str
) -> set[Any]:
    """As `insert_ignoring_duplicates`, and `column` of the rows it inserted: a row left out was
    written by another worker meanwhile, which the caller learns without reading anything back."""
    if not rows:
        return set()
    return _insert_ignoring_duplicates(session, table_of(model), rows, column)


def _insert_ignoring_duplicates(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], returning: str | None
) -> set[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql_insert(session, table, rows, ignore_duplicates=True, returning=returning)
    statement = sqlite.insert(table).on_conflict_do_nothing()
    if returning is None:
        session.execute(statement, list(rows))
        return set()
    return set(session.scalars(statement.returning(table.c[returning]), list(rows)))


def _postgresql_insert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_duplicates: bool,
    returning: str | None,
) -> set[Any]:
    if session.autoflush:
        session.flush()  # as session.execute would: rows may name objects still pending
    dialect = session.get_bind().dialect
    writer = _unnested(table, tuple(rows[0]), dialect, ignore_duplicates, returning)
    return writer.insert(session.connection(), rows)


class UnnestedInsert:
    """`INSERT ... SELECT * FROM unnest(column arrays)` on PostgreSQL (`ON CONFLICT DO NOTHING` when
    duplicates are ignored): every row of a batch in one statement of fixed text, one array
    parameter per column.

    SQLAlchemy sends such an insert as one statement per row in a pipeline (or, with RETURNING, as
    statements of many VALUES rows whose text the driver parses again each time): in a sync of
    10,000 messages the driver's own Python work for these inserts was about as long as the
    database's. The arrays go in binary form (`%b`), which the driver writes in C; in text form it
    quotes every element of a text array with a regular expression in Python, which cost as much as
    what it replaced. The short statement is prepared once.

    Each value is converted by its column's own bind processor (`DriverRows`), and a column a row
    leaves out gets the column's Python-side default, as SQLAlchemy gives it; the columns are those
    of the first row, and every row gives the same ones."""

    def __init__(
        self,
        table: Table,
        given: Sequence[str],
        dialect: Dialect,
        *,
        ignore_duplicates: bool,
        returning: str | None,
    ) -> None:
        defaults: list[tuple[str, Callable[[], Any]]] = []
        for column in table.columns:
            default = column.default
            if column.name in given or default is None:
                continue
            if default.is_scalar:
                defaults.append((column.name, partial(_same, default.arg)))  # type: ignore[attr-defined]
            elif default.is_callable:
                defaults.append((column.name, partial(default.arg, None)))  # type: ignore[attr-defined]
            else:
                raise ValueError(f"{table.name}.{column.name}: only Python-side defaults can be given here")
        self._given = tuple(given)
        self._defaults = tuple(defaults)
        columns = (*self._given, *(name for name, _ in defaults))
        self._encoder = DriverRows(table, columns, dialect)
        preparer = dialect.identifier_preparer
        names = ", ".join(preparer.quote(name) for name in columns)
        arrays = ", ".join(
            f"%b::{_array_element(table.c[name].type.compile(dialect=dialect))}[]" for name in columns
        )
        # Names and types from the table's own metadata only: every value goes as a parameter.
        self._insert = (
            f"INSERT INTO {preparer.format_table(table)} ({names}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays})"
            + (" ON CONFLICT DO NOTHING" if ignore_duplicates else "")
            + (f" RETURNING {preparer.quote(returning)}" if returning is not None else "")
        )
        self._returns = returning is not None

    def insert(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> set[Any]:
        """Insert the rows in the connection's transaction; the `returning` column of the rows
        inserted (empty without one)."""
        given, defaults = self._given, self._defaults
        if any(len(row) != len(given) for row in rows):
            raise ValueError("every row of one insert gives the same columns")
        values = self._encoder.encoded(
            [*(row[name] for name in given), *(make() for _, make in defaults)] for row in rows
        )
        arrays = tuple(map(list, zip(*values, strict=True)))
        inserted = connection.exec_driver_sql(self._insert, arrays)
        return set(inserted.scalars()) if self._returns else set()


def _array_element(column_type: str) -> str:
    """The column's type without its length or precision: an explicit cast to VARCHAR(n) would cut
    a longer value short without a word, where the insert's own conversion refuses it."""
    return _TYPE_MODIFIER.sub("", column_type)


_TYPE_MODIFIER = re.compile(r"\([^()]*\)")


def _same(value: T) -> T:
    return value


@functools.lru_cache(maxsize=64)
def _unnested(
    table: Table, given: tuple[str, ...], dialect: Dialect, ignore_duplicates: bool, returning: str | None
) -> UnnestedInsert:
    return UnnestedInsert(table, given, dialect, ignore_duplicates=ignore_duplicates, returning=returning)


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
