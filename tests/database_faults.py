"""A database that fails at one chosen statement, as a deadlock or a dropped connection does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event


@dataclass
class Fault:
    """Raises the driver's own OperationalError at statement `number` (counted from 1) of `engine`;
    SQLAlchemy wraps it as it wraps a real one."""

    number: int
    error: type[Exception]
    seen: int = 0
    fired: bool = False

    def __call__(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The outbox's rows are settled after the commit, by a transaction of their own whose
        # failure leaves them to the drain: they are not a statement of the batch. Nor is a BEGIN,
        # which touchline sends on SQLite (PostgreSQL's driver begins by itself): failing there is
        # failing before the first statement, and the settling transaction's BEGIN names no table.
        if statement.startswith(("PRAGMA busy_timeout", "BEGIN")) or (
            " pending_jobs" in statement and not statement.startswith("INSERT")
        ):
            return
        self.seen += 1
        if self.seen == self.number:
            self.fired = True
            raise self.error(f"injected failure at statement {self.number}: deadlock detected")


@contextmanager
def failing_statement(engine: Engine, number: int) -> Iterator[Fault]:
    fault = Fault(number, engine.dialect.loaded_dbapi.OperationalError)
    event.listen(engine, "before_cursor_execute", fault)
    try:
        yield fault
    finally:
        event.remove(engine, "before_cursor_execute", fault)
