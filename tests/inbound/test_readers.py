"""Reader processes read raw messages exactly as the worker would, and a dead one loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.sync.conftest import CUSTOMER, message
from touchline.inbound.readers import Readers, configure_readers, readers
from touchline.inbound.reading import ReadMessage, read_messages

HOSTILE_HTML = (
    b"From: Ann <ann@" + CUSTOMER.encode() + b">\r\nTo: sam@team.example\r\nSubject: hostile\r\n"
    b"Message-ID: <hostile@" + CUSTOMER.encode() + b">\r\n"
    b'Content-Type: text/html; charset="x-unknown-charset"\r\n\r\n'
    b"<p onclick=alert(1)>Thanks for the call<script>alert(2)</script></p>"
    b"<blockquote>On Monday you wrote: earlier text</blockquote>\r\n"
)
MALFORMED = b"Subject: =?utf-8?q?broken\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\nnothing"


def _raws() -> list[bytes]:
    plain = [
        message(f"Topic {number}", message_id=f"<m{number}@{CUSTOMER}>", body="word " * number)
        for number in range(1, 30)
    ]
    return [*plain, HOSTILE_HTML, MALFORMED, b""]


@pytest.fixture
def pool() -> Iterator[Readers]:
    readers_ = Readers(1)
    yield readers_
    readers_.close()


def test_a_reader_process_reads_what_the_worker_itself_reads(pool: Readers) -> None:
    raws = _raws()
    pool.start()
    helpers = pool.process_ids()
    assert len(helpers) == 1
    assert helpers[0] != os.getpid()

    read = pool.submit(raws).result()

    assert read == read_messages(raws)
    assert all(isinstance(one, ReadMessage) for one in read)  # malformed mail is read, with defects
    hostile = read[len(raws) - 3]
    assert isinstance(hostile, ReadMessage)
    assert hostile.shown.html_body is not None
    assert "script" not in hostile.shown.html_body
    assert "onclick" not in hostile.shown.html_body
    assert hostile.shown.snippet == "Thanks for the call"


def test_a_reader_that_dies_costs_only_time(pool: Readers, caplog: pytest.LogCaptureFixture) -> None:
    raws = _raws()
    pool.start()
    (helper,) = pool.process_ids()
    os.kill(helper, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pool.process_ids() and time.monotonic() < deadline:
        time.sleep(0.01)

    assert pool.submit(raws).result() == read_messages(raws)
    assert "a mail reader process died" in caplog.text

    # The next batch is read by a new helper.
    assert pool.submit(raws[:3]).result() == read_messages(raws[:3])
    (replacement,) = pool.process_ids()
    assert replacement != helper


def test_a_dead_helper_leaves_the_helpers_started_after_it_alone(pool: Readers) -> None:
    raws = _raws()
    pool.start()
    (helper,) = pool.process_ids()
    in_flight = pool.submit(raws * 40)  # long enough to be read when its helper is killed
    os.kill(helper, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pool.process_ids() and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = pool.submit(raws[:2])  # the broken pool refuses it: read by the caller
    later = pool.submit(raws[2:5])  # a new pool takes it

    assert in_flight.result() == read_messages(raws * 40)  # the dead helper's batch, read here
    assert refused.result() == read_messages(raws[:2])
    assert later.result() == read_messages(raws[2:5])
    (replacement,) = pool.process_ids()
    assert replacement != helper


def test_helpers_start_from_a_fork_server_that_built_the_patterns_and_loaded_no_database(
    pool: Readers,
) -> None:
    pool.start()
    running = pool._running()
    assert running is not None
    # Evaluated in the helper: the modules it has, inherited from the fork server or loaded since.
    modules = running.submit(eval, "sorted(__import__('sys').modules)").result()
    assert "touchline.inbound.reader_server" in modules  # importing it built the patterns
    assert not [name for name in modules if name.split(".")[0] == "sqlalchemy"]
    assert not [name for name in modules if name.startswith("touchline.models")]


def test_without_reader_processes_the_caller_reads() -> None:
    raws = _raws()[:2]  # built once: each message is dated when it is built
    inline = Readers(0)
    inline.start()
    reading = inline.submit(raws)
    assert inline.process_ids() == []
    assert reading.result() == read_messages(raws)
    with pytest.raises(ValueError, match="cannot be negative"):
        Readers(-1)


def test_configuring_the_same_number_keeps_the_running_helpers() -> None:
    before = readers().processes
    try:
        first = configure_readers(1)
        first.start()
        helpers = first.process_ids()
        assert configure_readers(1) is first
        assert first.process_ids() == helpers
        assert configure_readers(0).processes == 0
        assert first.process_ids() == []  # closed when replaced
    finally:
        configure_readers(before)


def test_helpers_leave_with_a_killed_worker() -> None:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from touchline.inbound.readers import Readers\n"
            "pool = Readers(2)\npool.start()\nprint(*pool.process_ids(), flush=True)\n"
            "import time\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    helpers = [int(pid) for pid in worker.stdout.readline().split()]
    assert len(helpers) == 2
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in helpers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A helper that has exited but is not yet reaped by its fork server counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
