"""Reading a page or the API while a long writer is in its transaction (a whole CSV import holds
SQLite's write lock to its end): GET and HEAD requests never queue behind it. A writing request waits
for SQLite's lock and then goes through; PostgreSQL locks rows, so it goes through at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.db import session_scope
from touchline.models import Company

WAIT = 20  # seconds; SQLite's busy timeout is 30, so a read that queued behind the writer fails this


@pytest.fixture
def hold_the_write_lock(
    engine: Engine, sessions: sessionmaker[Session], team: Team
) -> Iterator[Callable[[], threading.Event]]:
    """Starts a writing transaction that has written and stays open until the event it returns is
    set."""
    release = threading.Event()
    threads: list[threading.Thread] = []

    def start() -> threading.Event:
        holding = threading.Event()

        def write() -> None:
            with session_scope(sessions) as session:
                session.add(Company(workspace_id=team.workspace_id, name="Written meanwhile"))
                session.flush()
                holding.set()
                release.wait(timeout=WAIT * 3)

        threads.append(threading.Thread(target=write))
        threads[-1].start()
        assert holding.wait(timeout=WAIT)
        return release

    yield start
    release.set()
    for thread in threads:
        thread.join(timeout=WAIT)


def _in_thread(call: Callable[[], Response]) -> tuple[threading.Event, list[Response]]:
    done = threading.Event()
    answers: list[Response] = []

    def run() -> None:
        answers.append(call())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, answers


def test_reads_answer_while_a_writer_holds_the_lock_and_writes_wait_for_it(
    client: TestClient, team: Team, engine: Engine, hold_the_write_lock: Callable[[], threading.Event]
) -> None:
    # The token's first use is written down (then at most once a minute): a write of its own.
    assert client.get("/api/v1/companies", headers=team.headers()).status_code == 200
    release = hold_the_write_lock()

    read, read_answers = _in_thread(lambda: client.get("/api/v1/companies", headers=team.headers()))
    assert read.wait(timeout=WAIT), "a GET queued behind the writer"
    assert read_answers[0].status_code == 200
    assert "Written meanwhile" not in read_answers[0].text  # not committed yet

    wrote, write_answers = _in_thread(
        lambda: client.post("/api/v1/companies", json={"name": "After it"}, headers=team.headers())
    )
    if engine.dialect.name == "sqlite":
        assert not wrote.wait(timeout=0.5)  # waits for the lock, rather than failing at once
    release.set()
    assert wrote.wait(timeout=WAIT)
    assert write_answers[0].status_code == 201, write_answers[0].text
