"""The touchline side of bench/sync, run by `run.py` in a process of its own so that its peak RSS is
the sync's alone: one initial sync of a prepared mailbox, then no-change incremental syncs.

    TOUCHLINE_SECRET_KEY=... .venv/bin/python -m bench.sync.measure DATABASE_URL MAILBOX_ID [--runs 15]

Prints one JSON object on its last line of output. With `--profile FILE` the initial sync runs under
cProfile and the statistics are written to FILE, with `--profile-incremental FILE` the incremental
ones; with `--stages`, the wall-clock time of each pipeline stage (`StageClock`). The times of such
runs are no benchmark figures.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import json
import logging
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.sync.procfs import cpu_seconds, status_mb
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.inbound.readers import configure_readers
from touchline.kit.crypto import SecretBox
from touchline.kit.runtime import tune_garbage_collector
from touchline.models import Contact, Conversation, Email, EmailHolder, QuarantinedMessage
from touchline.worker import configure_queue

_EXECUTE = "database: driver execute (every statement)"


class StageClock:
    """Wall-clock time spent in the pipeline's stages, by wrapping the functions that do them.

    Stages nest (storing includes threading), and the database and IMAP lines cut across them; the
    fetching stages (IMAP, triage) run on their own thread beside storing: the breakdown tells where
    the time goes, not a sum. The wrappers cost about a microsecond a call.
    """

    def __init__(self) -> None:
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()
        self.names: list[str] = []

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        return wrapper

    def timed_generator(self, name: str, function: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self.add(name, time.perf_counter() - started)
                    return
                self.add(name, time.perf_counter() - started)
                yield item

        return wrapper

    def patch(self, target: Any, attribute: str, name: str, *, generator: bool = False) -> None:
        original = getattr(target, attribute)
        self.names.append(name)
        wrap = self.timed_generator if generator else self.timed
        setattr(target, attribute, wrap(name, original))

    def install(self, engine: Any) -> None:
        from touchline.inbound import reading
        from touchline.inbound.fetch import folders as fetch
        from touchline.inbound.readers import Reading
        from touchline.inbound.store import directory
        from touchline.inbound.store import service as store
        from touchline.mailboxes.providers.imap import ImapProvider

        self.patch(
            ImapProvider, "fetch_new_headers", "imap: EXAMINE, SEARCH and header batches", generator=True
        )
        self.patch(ImapProvider, "_open", "  imap: connect and log in (on first use, so nested)")
        self.patch(ImapProvider, "fetch_raw_messages", "imap: fetch kept bodies")
        self.patch(directory.directories, "get", "directory: version check / load")
        self.patch(directory, "load_directory", "  directory: full reload from the database")
        self.patch(fetch, "_already_held", "triage: already-held query")
        self.patch(fetch, "parse_headers", "triage: parse_headers")
        self.patch(fetch, "match", "triage: match")
        # With reader processes, reading runs there and only the wait for it shows here.
        self.patch(Reading, "result", "store: waiting for the batch's reading (reader processes)")
        self.patch(reading, "parse_message", "  reading here: parse_message (full MIME)")
        self.patch(reading, "make_snippet", "  reading here: snippet")
        self.patch(reading, "sanitise_html", "  reading here: sanitise_html")
        self.patch(store, "match", "store: match on the full message")
        self.patch(store, "store_emails", "store: store_emails (all of it, per batch)")
        self.patch(store._BatchWriter, "_contacts", "  store_emails: contacts")
        self.patch(store._BatchWriter, "_links", "  store_emails: company id look-ups")
        self.patch(store, "assign_conversations", "  store_emails: assign_conversations")
        self.patch(store._BatchWriter, "_add_holders", "  store_emails: holders")
        self.patch(store._BatchWriter, "_add_links", "  store_emails: links")
        self.patch(store._BatchWriter, "_touch_last", "  store_emails: Last Touch")
        self.patch(Session, "commit", "database: commit")
        self.patch(Session, "flush", "database: flush (nested in the above)")
        # Per thread: the next batch is fetched (and triaged) on a thread of its own.
        local = threading.local()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(*_: Any) -> None:
            local.__dict__.setdefault("started", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _after(*_: Any) -> None:
            self.add(_EXECUTE, time.perf_counter() - local.started.pop())

        self.names.append(_EXECUTE)

    def table(self) -> dict[str, list[float]]:
        return {name: [round(self.seconds[name], 3), self.calls[name]] for name in self.names}


def report_fields(report: SyncReport) -> dict[str, object]:
    return {
        "folders": report.folders,
        "seen": report.seen,
        "kept": report.kept,
        "stored_new": report.stored_new,
        "quarantined": report.quarantined,
        "status": report.status,
        "error": report.error,
        "per_folder": report.per_folder,
    }


def stored_counts(sessions: Any) -> dict[str, int]:
    with session_scope(sessions) as session:

        def count(model: type[object]) -> int:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

        return {
            "emails": count(Email),
            "holders": count(EmailHolder),
            "conversations": count(Conversation),
            "contacts": count(Contact),
            "quarantined": count(QuarantinedMessage),
        }


def timed_sync(
    sessions: Any, box: SecretBox, mailbox_id: uuid.UUID, profiler: cProfile.Profile | None
) -> tuple[SyncReport, float]:
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    report = sync_mailbox(sessions, box, mailbox_id)
    if profiler is not None:
        profiler.disable()
    return report, time.perf_counter() - started


def arguments() -> argparse.Namespace:
    options = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    options.add_argument("database_url")
    options.add_argument("mailbox_id", type=uuid.UUID)
    options.add_argument("--runs", type=int, default=15, help="no-change incremental syncs to time")
    options.add_argument("--profile", type=Path, help="write cProfile statistics of the initial sync here")
    options.add_argument("--profile-incremental", type=Path, help="and of the incremental syncs here")
    options.add_argument("--stages", action="store_true", help="time the initial sync's stages")
    options.add_argument(
        "--readers",
        type=int,
        default=Settings().sync_reader_processes,
        help="reader processes, as TOUCHLINE_SYNC_READER_PROCESSES (default: its default)",
    )
    return options.parse_args()


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING)

    engine = make_engine(args.database_url)
    sessions = make_sessionmaker(engine)
    box = SecretBox([os.environ["TOUCHLINE_SECRET_KEY"]])
    clock = StageClock() if args.stages else None
    if clock is not None:
        clock.install(engine)
    # Set up as `touchline worker` sets up its process: every job declared and the queue configured
    # (storing names the new emails in a job), the collector's settings, and its reader processes
    # started (and their patterns built) before it takes a job.
    from touchline.jobs import declare, declare_all

    declare_all()
    configure_queue(Settings(), declare=declare)
    tune_garbage_collector()
    pool = configure_readers(args.readers)
    pool.start()
    helpers = pool.process_ids()
    rss_before = status_mb("VmRSS")
    cpu_before = time.process_time()
    helpers_before = sum(map(cpu_seconds, helpers))
    profiler = cProfile.Profile() if args.profile else None
    initial, initial_seconds = timed_sync(sessions, box, args.mailbox_id, profiler)
    initial_cpu = time.process_time() - cpu_before
    readers_cpu = sum(map(cpu_seconds, helpers)) - helpers_before
    if pool.process_ids() != helpers:
        raise SystemExit(f"reader processes changed during the sync: {helpers} -> {pool.process_ids()}")
    stages = clock.table() if clock is not None else None
    if profiler is not None:
        profiler.dump_stats(str(args.profile))
    peak_after_initial = status_mb("VmHWM")

    if clock is not None:
        clock.seconds.clear()
        clock.calls.clear()
    incremental_ms: list[float] = []
    incremental_seen = 0
    report = initial
    profiler = cProfile.Profile() if args.profile_incremental else None
    for _ in range(args.runs):
        report, seconds = timed_sync(sessions, box, args.mailbox_id, profiler)
        incremental_ms.append(seconds * 1000)
        incremental_seen += report.seen
        if report.error is not None:
            raise SystemExit(f"incremental sync failed: {report.error}")
    if profiler is not None:
        profiler.dump_stats(str(args.profile_incremental))
    stored = stored_counts(sessions)
    readers_peak = sum(status_mb("VmHWM", pid) for pid in helpers)
    pool.close()
    engine.dispose()
    print(
        json.dumps(
            {
                "initial_seconds": initial_seconds,
                "initial_cpu_seconds": initial_cpu + readers_cpu,
                "initial_cpu_seconds_readers": readers_cpu,
                "readers": args.readers,
                "initial": report_fields(initial),
                "incremental_ms": incremental_ms,
                "incremental_median_ms": statistics.median(incremental_ms) if incremental_ms else None,
                "incremental_seen": incremental_seen,
                "folders_synced": report.folders,
                "rss_before_mb": rss_before,
                "peak_rss_after_initial_mb": peak_after_initial,
                "peak_rss_mb": status_mb("VmHWM"),
                "peak_rss_readers_mb": readers_peak,
                "stored": stored,
                "profiled": bool(args.profile or args.profile_incremental or args.stages),
                "stages": stages,
                "incremental_stages": clock.table() if clock is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main()
