"""Finding the real services the suite talks to; under CI=true a missing one fails instead of skipping."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() == "true"

POSTGRES_ADMIN_URL = os.environ.get(
    "TOUCHLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _redis_url() -> str:
    """The Redis database the tests of this process use, emptying it before and after each.

    With pytest-xdist each worker process takes its own (15, 14, ... below the one given): tests of
    one worker run one at a time, but two workers emptying one database would lose each other's jobs."""
    given = os.environ.get("TOUCHLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base, _, database = given.rpartition("/")
    return f"{base}/{int(database) - (int(worker) if worker.isdigit() else 0)}"


REDIS_URL = _redis_url()


def unavailable(what: str, how_to_fix: str) -> None:
    """Skip on a developer's machine; fail under CI, where every service must be present."""
    message = f"{what} is not available: {how_to_fix}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def emptied_redis() -> Iterator[str]:
    """`REDIS_URL`, its database emptied before and after; without Redis, `unavailable`."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as error:
        unavailable("Redis", f"{error}; start redis-server or set TOUCHLINE_TEST_REDIS_URL")
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
