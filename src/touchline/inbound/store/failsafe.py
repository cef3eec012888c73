"""Which failures are the database's own, and so must never cost a message its place.

A message that cannot be stored is quarantined so that the rest of its batch goes on. A database
that fails (a lost connection, a deadlock, a lock that was not granted) says nothing about the
message: quarantining it then would set good mail aside, and the caller would move its checkpoint
past it. Such a failure aborts the whole batch instead, and the caller tries it again later.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
    ResourceClosedError,
)
from sqlalchemy.exc import (
    TimeoutError as PoolTimeoutError,
)

_DATABASE_FAILURES = (
    OperationalError,  # lost connections, deadlocks, "database is locked", serialization failures
    InterfaceError,  # the driver's connection is unusable
    DisconnectionError,
    PoolTimeoutError,  # no connection to be had from the pool
    PendingRollbackError,  # an earlier statement of this transaction failed: nothing here can be trusted
    ResourceClosedError,
)


def database_failed(error: BaseException) -> bool:
    """True when `error` is the database failing rather than something about the data written."""
    if isinstance(error, _DATABASE_FAILURES):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated
