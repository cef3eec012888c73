"""Helper processes that read raw messages (`touchline.inbound.reading`) while the worker stores.

A sync is CPU-bound in Python: one process, whatever its threads, uses one core. Parsing MIME, the
snippet's reply heuristics and sanitising HTML need nothing but the raw bytes, so sync hands each
batch's bodies to a helper as soon as they arrive and stores the batch before while it reads them.
The storing thread then only matches, threads and writes.

`TOUCHLINE_SYNC_READER_PROCESSES` helpers per worker process (1 by default; 0 reads in the worker
itself). They are started from a fork server, which has imported nothing but this module and built
the reading patterns (`touchline.inbound.reader_server`), so they inherit the patterns but neither
the worker's threads nor its database connections. A helper that dies costs nothing: its batch is
read in the worker instead, and the next batch starts new helpers, from the same fork server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from touchline.kit.runtime import tune_garbage_collector

if TYPE_CHECKING:
    from touchline.inbound.reading import Read

# The reading modules (MIME, snippets, HTML) are imported when the first batch is read, not with this
# module: a process that configures its readers and then finds no new mail never loads them.

log = logging.getLogger(__name__)

# Plain ASCII, and text beyond it: the reply heuristics' patterns are built for each on first use.
_WARM_UP = [
    (
        "From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nSubject: warm-up\r\n"
        f"Content-Type: text/{kind}; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
    for kind, body in (
        ("html", "<p>Thanks!</p><p>On Mon, Bob wrote:</p><blockquote>Hi</blockquote>"),
        ("plain", "Thanks!\r\n\r\n-- \r\nAnn\r\nDisclaimer: private\r\n\r\nOn Mon, Bob wrote:\r\n> Hi"),
        (
            "plain",
            "Grüße\r\n\r\n-- \r\nAnn Müller\r\nDisclaimer: vertraulich\r\n\r\nAm Mo. schrieb Bob:\r\n> Hallo",
        ),
    )
]


def warm_up() -> None:
    """Build the reply heuristics' patterns and their gates before the first batch arrives (about two
    seconds of CPU)."""
    from touchline.inbound.parse import parse_message
    from touchline.inbound.reading import shown_of

    for raw in _WARM_UP:
        shown_of(parse_message(raw))


def _start_helper() -> None:
    """Leave with the worker, however it ends; build the patterns; collect garbage as the worker does.

    A helper holds its own task queue's writing end, so it would never see that queue close: killed
    workers (SIGKILL, the OOM killer) would leave their helpers, and the fork server they keep alive,
    running forever.
    """
    requester = multiprocessing.parent_process()
    if requester is not None:

        def leave_with_requester() -> None:
            requester.join()
            os._exit(0)

        threading.Thread(target=leave_with_requester, name="touchline-reader-watch", daemon=True).start()
    warm_up()  # built already in the fork server, which the helper inherits, unless it failed there
    tune_garbage_collector()  # after the warm-up, so that the built patterns are left out too


class Reading:
    """One batch being read: by a helper, or here when there is none or it died."""

    def __init__(
        self,
        raws: Sequence[bytes],
        readers: Readers,
        pool: ProcessPoolExecutor | None = None,
        future: Future[list[Read]] | None = None,
    ) -> None:
        self._raws = raws
        self._readers = readers
        self._pool = pool
        self._future = future

    def result(self) -> list[Read]:
        if self._pool is not None and self._future is not None:
            try:
                return self._future.result()
            except BrokenProcessPool as error:
                self._readers.broken(self._pool, error)
            except CancelledError:
                pass  # its helpers were closed (the worker is reconfiguring or leaving): read it here
        from touchline.inbound.reading import read_messages

        return read_messages(list(self._raws))


class Readers:
    """A pool of `processes` helpers (none: every batch is read by the caller, when it asks)."""

    def __init__(self, processes: int) -> None:
        if processes < 0:
            raise ValueError("the number of reader processes cannot be negative")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the helpers and wait for them: each builds its patterns as it starts."""
        pool = self._running()
        if pool is not None:
            for waiting in [pool.submit(os.getpid) for _ in range(self.processes)]:
                waiting.result()

    def submit(self, raws: Sequence[bytes]) -> Reading:
        pool = self._running() if raws else None
        if pool is None:
            return Reading(raws, self)
        from touchline.inbound.reading import read_messages

        try:
            return Reading(raws, self, pool, pool.submit(read_messages, list(raws)))
        except (BrokenProcessPool, RuntimeError) as error:  # RuntimeError: shut down meanwhile
            self.broken(pool, error)
            return Reading(raws, self)

    def process_ids(self) -> list[int]:
        """The helpers alive now (for measuring their CPU time)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return sorted(pid for pid, process in processes.items() if process.is_alive())

    def broken(self, pool: ProcessPoolExecutor, error: BaseException) -> None:
        """`pool` failed: its batches are read by the caller, and the next batch starts new helpers.

        Only that pool is let go: a newer one, started meanwhile for later batches, stays.
        """
        log.warning("a mail reader process died (%s); reading its batch here, starting new ones", error)
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _running(self) -> ProcessPoolExecutor | None:
        if self.processes == 0:
            return None
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["touchline.inbound.reader_server"])
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=context, initializer=_start_helper
                )
            return self._pool


_readers = Readers(0)


def configure_readers(processes: int) -> Readers:
    """Use `processes` helpers from now on in this process (the commands that sync call this).

    They start when the first batch is read, or at once with `start()`.
    """
    global _readers
    if _readers.processes != processes:
        previous, _readers = _readers, Readers(processes)
        previous.close()
    return _readers


def readers() -> Readers:
    return _readers
