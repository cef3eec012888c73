"""Workers log each job they run: one line when it starts, one when it ends with its counts and
duration, or, when it fails, one with the reason, so an operator can see what a worker did."""

from __future__ import annotations

import logging
import shlex
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from huey.exceptions import TaskException

from touchline.config import Settings
from touchline.worker import Queue
from touchline.worker import queue as worker_queue

SYNCS = "tests.logged-sync"
FAILS = "tests.logged-failure"
SYNC_SECONDS = 2.5
FAILURE_SECONDS = 0.25


class _Clock:
    """The monotonic clock the job lines measure durations with; the jobs move it on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _fields(message: str) -> dict[str, str]:
    """A job line's `key=value` pairs, its quoted values unquoted as a shell would."""
    return dict(pair.split("=", 1) for pair in shlex.split(message))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(worker_queue, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


@pytest.fixture
def queue(settings: Settings, clock: _Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    """A queue with a long-lane job that syncs and a quick one that fails, each without retries,
    consumed by the worker threads a process runs."""

    def sync(context: object, *, mailbox_id: str) -> dict[str, int]:
        clock.now += SYNC_SECONDS
        return {"checked": 7, "kept": 5}

    def fail(context: object, *, mailbox_id: str) -> None:
        clock.now += FAILURE_SECONDS
        raise RuntimeError('the server said "no"')

    monkeypatch.setitem(
        worker_queue._REGISTRY,
        SYNCS,
        worker_queue._JobSpec(SYNCS, sync, retries=0, retry_delay=0, lane="long"),
    )
    monkeypatch.setitem(
        worker_queue._REGISTRY, FAILS, worker_queue._JobSpec(FAILS, fail, retries=0, retry_delay=0)
    )
    queue = Queue(settings)
    queue.start_in_process(workers=1, periodic=False)
    yield queue
    queue.close()


def test_a_worker_logs_each_job_once_at_its_start_and_once_at_its_end_or_failure(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    synced, failed = str(uuid.uuid4()), str(uuid.uuid4())
    with caplog.at_level(logging.INFO, logger="touchline.jobs"):
        result: Any = queue.send(SYNCS, mailbox_id=synced)
        assert result.get(blocking=True, timeout=30) == {"checked": 7, "kept": 5}
        failure: Any = queue.send(FAILS, mailbox_id=failed)
        with pytest.raises(TaskException):
            failure.get(blocking=True, timeout=30)

    lines = [
        (record.levelno, _fields(record.getMessage()))
        for record in caplog.records
        if record.name == "touchline.jobs"
    ]
    sync_lines = [(level, fields) for level, fields in lines if fields.get("job") == SYNCS]
    failure_lines = [(level, fields) for level, fields in lines if fields.get("job") == FAILS]

    assert [fields["event"] for _, fields in sync_lines] == ["job_start", "job_end"]
    (_, start), (level, end) = sync_lines
    assert start == {"event": "job_start", "job": SYNCS, "mailbox_id": synced}
    assert level == logging.INFO
    assert end == {
        "event": "job_end",
        "job": SYNCS,
        "mailbox_id": synced,
        "checked": "7",
        "kept": "5",
        "duration_s": "2.500",
    }

    assert [fields["event"] for _, fields in failure_lines] == ["job_start", "job_error"]
    (_, start), (level, error) = failure_lines
    assert start == {"event": "job_start", "job": FAILS, "mailbox_id": failed}
    assert level == logging.ERROR
    assert error == {
        "event": "job_error",
        "job": FAILS,
        "mailbox_id": failed,
        "duration_s": "0.250",
        "reason": 'RuntimeError: the server said "no"',
    }
