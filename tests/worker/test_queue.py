"""The job queue: sent only after commit, run in-process or by separate workers, on SQLite or Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import touchline_environment
from touchline.app import create_app
from touchline.config import Settings
from touchline.db import session_scope
from touchline.schema import upgrade
from touchline.worker import Queue, configure_queue, enqueue


def test_a_job_is_sent_only_when_the_transaction_commits(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    queue = configure_queue(settings)
    try:
        with session_scope(sessions) as session:
            enqueue(session, "worker.ping", reply_key="committed")
            assert queue.pending_count() == 0
        assert queue.pending_count() == 1

        def failing_transaction() -> None:
            with session_scope(sessions) as session:
                enqueue(session, "worker.ping", reply_key="rolled-back")
                raise RuntimeError("the transaction fails")

        with pytest.raises(RuntimeError):
            failing_transaction()
        assert queue.pending_count() == 1
        with pytest.raises(KeyError, match="no job named"), session_scope(sessions) as session:
            enqueue(session, "no.such.job")
    finally:
        queue.close()


def test_the_in_process_worker_runs_jobs(settings: Settings) -> None:
    queue = Queue(settings)
    queue.start_in_process(workers=1)
    try:
        assert queue.ping_worker(timeout=10) is not None
    finally:
        queue.close()


def test_without_a_worker_nothing_answers(settings: Settings) -> None:
    queue = Queue(settings)
    try:
        assert queue.ping_worker(timeout=0.5) is None
    finally:
        queue.close()


@pytest.mark.redis
def test_separate_workers_take_jobs_from_redis(settings: Settings, redis_url: str, tmp_path: Path) -> None:
    # A database of its own: the workers' every-minute jobs must not find the mailboxes that other
    # tests left connected and keep both single-thread workers busy past the pings' timeout.
    database_url = f"sqlite:///{tmp_path / 'workers.db'}"
    upgrade(database_url)
    settings = settings.model_copy(update={"queue_url": redis_url, "database_url": database_url})
    env = touchline_environment(settings)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "touchline.cli", "worker", "--threads", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"worker{n}.log").open("w"),
        )
        for n in range(2)
    ]
    try:
        pinged = subprocess.run(
            [sys.executable, "-m", "touchline.cli", "queue", "ping", "--timeout", "30"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert pinged.returncode == 0, pinged.stderr + "".join(
            (tmp_path / f"worker{n}.log").read_text() for n in range(2)
        )
        assert "a worker answered" in pinged.stdout
        queue = Queue(settings)
        try:
            answered = [queue.ping_worker(timeout=30) for _ in range(4)]
        finally:
            queue.close()
        assert all(seconds is not None for seconds in answered)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=15)


@pytest.mark.redis
def test_health_shows_a_redis_queue(
    settings: Settings, redis_url: str, sessions: sessionmaker[Session]
) -> None:
    settings = settings.model_copy(update={"queue_url": redis_url})
    with TestClient(create_app(settings, queue=Queue(settings))) as client:
        body = client.get("/health").json()
    assert body["queue"] == {"backend": "redis", "pending": 0, "ok": True}


def test_health_fails_when_the_queue_is_unreachable(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    settings = settings.model_copy(update={"queue_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(settings, queue=Queue(settings))) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["queue"]["ok"] is False
    assert response.json()["database"]["ok"] is True


def test_no_worker_ping_without_a_worker_exits_with_advice(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "touchline.cli", "queue", "ping", "--timeout", "0.5"],
        env=touchline_environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "touchline worker" in result.stderr


def test_queue_ping_against_an_unreachable_queue_prints_one_line_and_fails(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"queue_url": "redis://:hunter2@127.0.0.1:1/0"})
    result = subprocess.run(
        [sys.executable, "-m", "touchline.cli", "queue", "ping", "--timeout", "5"],
        env={**touchline_environment(unreachable), "COLUMNS": "60"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the queue (Redis at redis://:***@127.0.0.1:1/0) cannot be reached")
    assert "hunter2" not in result.stderr
