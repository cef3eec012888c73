"""The README's scale-out set-up, run for real: PostgreSQL, Redis, two `serve --no-worker` processes
on one machine and two workers. One worker is killed mid-sync with SIGKILL and the other stopped with
SIGTERM; a replacement worker is started, as a service manager would. Every mailbox finishes within
minutes, and each stores exactly what a clean run stores."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_SECRET_KEY, _postgres_database, touchline_environment
from tests.services import emptied_redis, free_port
from tests.services.dovecot import DovecotServer
from tests.sync.conftest import SyncWorld
from tests.sync.stores import NOW, mail_of, snapshot, stored_count, workspace_beside
from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Mailbox
from touchline.schema import upgrade
from touchline.worker import configure_queue

pytestmark = [pytest.mark.dovecot, pytest.mark.redis]

MAILBOXES = 4
MESSAGES = 300
LEASE_SECONDS = 6
FINISH_WITHIN = 300.0


@pytest.fixture
def scale_out_settings(tmp_path: Path) -> Iterator[Settings]:
    """A PostgreSQL database of its own (other tests' mailboxes would keep the workers busy) and a
    flushed Redis database."""
    with emptied_redis() as queue_url:
        for url in _postgres_database():
            upgrade(url)
            yield Settings(
                data_dir=tmp_path / "data",
                database_url=url,
                queue_url=queue_url,
                secret_key=TEST_SECRET_KEY,
                in_process_worker=False,
                inbound_domain="log.test.example",
                allow_private_mail_hosts=True,
                sync_lease_seconds=LEASE_SECONDS,
            )


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds:g} s")
        time.sleep(0.1)


def _synced(sessions: sessionmaker[Session], mailbox_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    with session_scope(sessions) as session:
        return list(
            session.scalars(
                select(Mailbox.id).where(Mailbox.id.in_(mailbox_ids), Mailbox.last_synced_at.is_not(None))
            )
        )


def _sync_lines(log: Path) -> list[tuple[str, str, str]]:
    """A worker's sync job lines, in order: (event, mailbox id, outcome or "")."""
    lines = []
    for line in log.read_text().splitlines():
        fields = dict(
            pair.split("=", 1) for pair in line.partition(" touchline.jobs ")[2].split(" ") if "=" in pair
        )
        if fields.get("job") == "inbound.sync_mailbox":
            lines.append((fields["event"], fields["mailbox_id"], fields.get("outcome", "")))
    return lines


def _running_syncs(log: Path) -> set[str]:
    """The mailboxes whose sync a worker's log shows started and not yet ended."""
    running: dict[str, int] = {}
    for event, mailbox_id, _ in _sync_lines(log):
        running[mailbox_id] = running.get(mailbox_id, 0) + (1 if event == "job_start" else -1)
    return {mailbox_id for mailbox_id, count in running.items() if count > 0}


def test_the_readme_scale_out_set_up_finishes_every_mailbox_after_killed_workers(
    scale_out_settings: Settings, dovecot: DovecotServer, tmp_path: Path
) -> None:
    settings = scale_out_settings
    box = SecretBox(settings.secret_keys)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    queue = configure_queue(settings)  # connecting a mailbox queues its first sync in Redis
    processes: list[subprocess.Popen[bytes]] = []
    env = {
        **touchline_environment(settings),
        "TOUCHLINE_SYNC_LEASE_SECONDS": str(LEASE_SECONDS),
        "TOUCHLINE_INBOUND_SMTP_PORT": str(free_port()),
    }

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "touchline.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{name}.log").open("w"),
        )
        processes.append(process)
        return process

    def logs() -> str:
        return "".join(path.read_text() for path in sorted(tmp_path.glob("*.log")))

    try:
        base = SyncWorld(sessions, box, dovecot, uuid.uuid4(), uuid.uuid4(), settings)
        mail = mail_of(MESSAGES)

        clean, clean_id = workspace_beside(base, "Clean", box)
        user_id, imap = clean.add_user("clean")
        for raw in mail:
            dovecot.append(imap, "INBOX", raw, received_at=NOW - dt.timedelta(hours=1))
        assert clean.sync(clean.connect(user_id, imap)).error is None
        expected = snapshot(sessions, clean_id)
        assert len(expected) > 100

        targets: dict[uuid.UUID, uuid.UUID] = {}  # mailbox -> workspace
        for n in range(MAILBOXES):
            target, workspace_id = workspace_beside(base, f"Scaled {n}", box)
            user_id, imap = target.add_user(f"scaled{n}")
            for raw in mail:
                dovecot.append(imap, "INBOX", raw, received_at=NOW - dt.timedelta(hours=1))
            targets[target.connect(user_id, imap)] = workspace_id
        mailbox_ids = list(targets)

        # README step 3: two API processes on one machine, without workers; both keep running.
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            start(
                f"serve{n}",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-migrate",
                "--no-worker",
            )

        def serving() -> bool:
            for port in ports:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
            return True

        _wait(lambda: serving() or any(p.poll() is not None for p in processes), 180, "both serves answering")
        assert all(process.poll() is None for process in processes), logs()

        # README step 4: two workers.
        killed = start("worker-killed", "worker", "--threads", "2")
        stopped = start("worker-stopped", "worker", "--threads", "2")

        def stored() -> int:
            return sum(stored_count(sessions, workspace_id) for workspace_id in targets.values())

        _wait(lambda: stored() > 0, 240, "the first stored batch")
        assert len(_synced(sessions, mailbox_ids)) < MAILBOXES
        killed.send_signal(signal.SIGKILL)
        at_kill_by_workspace = {w: stored_count(sessions, w) for w in targets.values()}
        at_kill = sum(at_kill_by_workspace.values())
        _wait(lambda: stored() > at_kill, 120, "progress after the SIGKILL")
        assert len(_synced(sessions, mailbox_ids)) < MAILBOXES, "every mailbox finished before the SIGTERM"
        # SIGTERM while the worker is syncing a mailbox with batches still to store, for it to hand
        # the rest back. A sync that runs on the killed worker's mailbox within its lease only finds
        # it held and ends; once the lease has passed, the second worker takes that mailbox over,
        # which shows as stores the dead worker cannot have made. (The second worker may well have
        # finished its own mailboxes by now, leaving only the killed worker's.)
        stopped_log, killed_log = tmp_path / "worker-stopped.log", tmp_path / "worker-killed.log"
        held: set[str] = set()

        def holding() -> bool:
            running, dead = _running_syncs(stopped_log), _running_syncs(killed_log)
            for mailbox_id, workspace_id in targets.items():
                if str(mailbox_id) not in running:
                    continue
                count = stored_count(sessions, workspace_id)
                taken_over = count > at_kill_by_workspace[workspace_id]
                if count < len(expected) and (str(mailbox_id) not in dead or taken_over):
                    held.add(str(mailbox_id))
            return bool(held)

        def all_stored() -> bool:
            return all(stored_count(sessions, w) >= len(expected) for w in targets.values())

        # Once a worker holds a mailbox, a sync of this size takes a fraction of a second, so the second
        # worker may store everything left before a poll sees it syncing; then the SIGTERM stops an
        # idle worker, which must still stop gracefully. The hand-back of a sync that a SIGTERM cuts
        # short is shown deterministically by tests/sync/test_sync_lease.py.
        _wait(lambda: holding() or all_stored(), 180, "the second worker syncing an unfinished mailbox")
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(timeout=120) == 0, logs()  # a graceful stop, not a crash
        # Its sync ended with a job line, not cut off: handed back (the rest queued for another
        # worker), or finished when its last batch was already being stored as the signal came (a
        # race this test cannot close; tests/sync/test_sync_lease.py shows the hand-back itself).
        ends = [
            (mailbox_id, outcome)
            for event, mailbox_id, outcome in _sync_lines(stopped_log)
            if event != "job_start"
        ]
        assert held <= {mailbox_id for mailbox_id, _ in ends}, logs()
        assert _running_syncs(stopped_log) == set(), logs()
        handed_back = {mailbox_id for mailbox_id, outcome in ends if outcome == "handed_back"}

        # A service manager restarts workers; the killed one's mailboxes wait only for their lease.
        start("worker-restarted", "worker", "--threads", "2")
        _wait(lambda: len(_synced(sessions, mailbox_ids)) == MAILBOXES, FINISH_WITHIN, "every mailbox synced")
        for workspace_id in targets.values():
            assert snapshot(sessions, workspace_id) == expected

        # A handed-back mailbox was synced on by the restarted worker.
        restarted_syncs = {
            mailbox_id for event, mailbox_id, _ in _sync_lines(tmp_path / "worker-restarted.log")
        }
        assert handed_back & held <= restarted_syncs, logs()

        # The workers said what they did, one line per job start and end.
        journal = logs()
        for mailbox_id in mailbox_ids:
            assert f"event=job_start job=inbound.sync_mailbox mailbox_id={mailbox_id}" in journal
        assert "event=job_end job=inbound.sync_mailbox" in journal
        assert "kept=" in journal
        assert "duration_s=" in journal
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        queue.close()
        engine.dispose()
