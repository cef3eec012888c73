"""One sync per mailbox at a time, held by a lease that runs out when its worker dies (and is taken
over at once from the worker's own host), and a sync asked for while another runs is queued after
it; a mailbox that stops syncing shows as stalled."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, run_touchline, sign_in_form, touchline_environment
from tests.processes import exited_process
from tests.sync.conftest import INTERNAL, SyncWorld, message
from touchline.app import create_app
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch import tasks
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.inbound.fetch.tasks import schedule_syncs, sync_mailbox_job
from touchline.kit.crypto import SecretBox
from touchline.kit.processes import ProcessIdentity, started_of, this_process
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes import sync_lease
from touchline.mailboxes.providers.base import Folder, SpecialUse
from touchline.models import Mailbox
from touchline.models.base import utcnow
from touchline.worker import current_queue
from touchline.worker.queue import stopping
from touchline.workspace.permissions import Actor

pytestmark = pytest.mark.dovecot

LEASE = dt.timedelta(minutes=2)


def _connected(world: SyncWorld, local: str, messages: int = 0) -> uuid.UUID:
    user_id, imap = world.add_user(local)
    for n in range(messages):
        world.dovecot.append(imap, "INBOX", message(f"{local} {n}"), received_at=utcnow())
    return world.connect(user_id, imap)


def _row(world: SyncWorld, mailbox_id: uuid.UUID) -> Mailbox:
    """The committed row, read without a writing transaction (one may be open in this thread)."""
    with world.sessions() as session:
        row = session.get(Mailbox, mailbox_id)
        assert row is not None
        session.expunge(row)
        return row


def _hold(
    world: SyncWorld,
    mailbox_id: uuid.UUID,
    holder: str,
    until: dt.datetime,
    process: ProcessIdentity | None = None,
) -> None:
    """What a worker holding the mailbox leaves in its row: a lease running (`until` ahead) or run
    out (behind), held by `process`, or by a process not recorded (a lease older than the record)."""
    with session_scope(world.sessions) as session:
        session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(
                sync_holder=holder,
                sync_leased_until=until,
                sync_holder_host=process.host if process else None,
                sync_holder_pid=process.pid if process else None,
                sync_holder_started=process.started if process else None,
            )
        )


def _claim(
    session: Session,
    mailbox_id: uuid.UUID,
    holder: str,
    now: dt.datetime,
    *,
    lease: dt.timedelta = LEASE,
    process: ProcessIdentity | None = None,
) -> bool:
    """A claim by `process` (by default this one), as `touchline sync` and the workers make it."""
    return sync_lease.claim(session, mailbox_id, holder, lease, now, process or this_process(), started_of)


def test_a_live_lease_keeps_others_out_until_it_runs_out(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "lease")
    now = utcnow()
    with session_scope(world.sessions) as session:
        assert _claim(session, mailbox_id, "first", now)
    with session_scope(world.sessions) as session:
        # Its process lives (this one): it is not taken over.
        assert not _claim(session, mailbox_id, "second", now + LEASE / 2)
        assert sync_lease.renew(session, mailbox_id, "first", LEASE, now + LEASE / 2)
    with session_scope(world.sessions) as session:
        # Renewed at half time, so still held when the first lease would have run out.
        assert not _claim(session, mailbox_id, "second", now + LEASE + dt.timedelta(seconds=1))
    with session_scope(world.sessions) as session:
        # Its holder stopped renewing (killed): the next claim after the lease takes over.
        assert _claim(session, mailbox_id, "second", now + 2 * LEASE)
    with session_scope(world.sessions) as session:
        assert not sync_lease.renew(session, mailbox_id, "first", LEASE, now + 2 * LEASE)
        assert not sync_lease.release(session, mailbox_id, "first")  # not the holder: changes nothing
        assert _row(world, mailbox_id).sync_holder == "second"
        sync_lease.release(session, mailbox_id, "second")
    assert _row(world, mailbox_id).sync_leased_until is None


def test_a_live_lease_whose_process_is_gone_is_taken_over_at_once_from_its_host(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "gone")
    now = utcnow()
    dead = exited_process()
    with session_scope(world.sessions) as session:
        assert _claim(session, mailbox_id, "killed run", now, process=dead)
    with session_scope(world.sessions) as session:
        # From another host nobody can tell whether that process lives: its lease must run out.
        elsewhere = ProcessIdentity("another-host", dead.pid, dead.started)
        assert not _claim(session, mailbox_id, "remote run", now, process=elsewhere)
        assert _row(world, mailbox_id).sync_holder == "killed run"
    with session_scope(world.sessions) as session:
        assert _claim(session, mailbox_id, "next run", now)  # from its host: at once
    row = _row(world, mailbox_id)
    here = this_process()
    assert (row.sync_holder, row.sync_holder_host, row.sync_holder_pid) == ("next run", here.host, here.pid)
    assert row.sync_holder_started == here.started
    with session_scope(world.sessions) as session:
        assert not _claim(session, mailbox_id, "third run", now)  # its process lives
        assert not sync_lease.renew(session, mailbox_id, "killed run", LEASE, now)
        assert sync_lease.release(session, mailbox_id, "next run") is False
    row = _row(world, mailbox_id)
    assert (row.sync_holder, row.sync_holder_host, row.sync_holder_pid, row.sync_holder_started) == (
        None,
        None,
        None,
        None,
    )


def test_a_live_lease_that_names_no_process_is_left_to_run_out(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "unnamed")
    _hold(world, mailbox_id, "a worker from before the process was recorded", utcnow() + LEASE)
    with session_scope(world.sessions) as session:
        assert not _claim(session, mailbox_id, "next run", utcnow())


def test_a_mailbox_left_held_by_a_killed_worker_is_synced_once_its_lease_ran_out(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "orphan", messages=3)
    # A worker died mid-sync a while ago: its lease ran out and nobody renews it.
    _hold(world, mailbox_id, "killed-worker", utcnow() - dt.timedelta(seconds=1))
    counts = sync_mailbox_job(current_queue().context, mailbox_id=str(mailbox_id))
    assert counts["outcome"] == mailboxes.STATUS_CONNECTED
    assert counts["kept"] == 3
    row = _row(world, mailbox_id)
    assert row.last_synced_at is not None
    assert (row.sync_holder, row.sync_leased_until) == (None, None)


def test_a_sync_asked_for_while_another_runs_is_queued_after_it(
    world: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox_id = _connected(world, "busy", messages=1)
    queue = current_queue()
    asked: list[dict[str, object]] = []

    def sync_asked_for_meanwhile(*args: Any, **kwargs: Any) -> SyncReport:
        # While this run holds the mailbox, someone presses "Sync now" (or the scheduler queues it).
        asked.append(sync_mailbox_job(queue.context, mailbox_id=str(mailbox_id)))
        assert _row(world, mailbox_id).sync_requested
        return sync_mailbox(*args, **kwargs)

    monkeypatch.setattr(tasks, "sync_mailbox", sync_asked_for_meanwhile)
    pending = _pending_syncs(mailbox_id)
    counts = sync_mailbox_job(queue.context, mailbox_id=str(mailbox_id))
    assert asked == [{"outcome": "queued_after_running_sync"}]  # not run beside the running one
    assert counts["kept"] == 1
    assert _pending_syncs(mailbox_id) == pending + 1  # and not dropped: queued after it
    row = _row(world, mailbox_id)
    assert (row.sync_holder, row.sync_requested) == (None, False)


def test_the_sync_command_takes_the_same_lease_as_the_workers(world: SyncWorld, settings: Settings) -> None:
    mailbox_id = _connected(world, "foreground", messages=1)
    _hold(world, mailbox_id, "a worker", utcnow() + LEASE)

    held = run_touchline(settings, "sync", "--user", f"foreground@{INTERNAL}", "--once")
    assert held.returncode == 0, held.stderr
    assert "a worker is syncing it now, and syncs it again after that run" in held.stdout
    row = _row(world, mailbox_id)
    assert (row.sync_holder, row.sync_requested) == ("a worker", True)  # left to it, and asked again

    # A `touchline sync` of this host was killed a moment ago: its lease still runs, its process is gone.
    _hold(world, mailbox_id, "a killed sync", utcnow() + LEASE, exited_process())
    synced = run_touchline(settings, "sync", "--user", f"foreground@{INTERNAL}", "--once")
    assert synced.returncode == 0, synced.stderr
    assert "1 checked, 1 kept" in synced.stdout  # the first run synced nothing beside the worker
    row = _row(world, mailbox_id)
    assert (row.sync_holder, row.sync_leased_until, row.sync_requested) == (None, None, False)


def _pending_syncs(mailbox_id: uuid.UUID) -> int:
    queue = current_queue()
    return sum(1 for task in queue.lanes["long"].pending() if task.kwargs == {"mailbox_id": str(mailbox_id)})


def test_the_scheduler_leaves_a_live_lease_to_its_holder_unless_the_holder_is_gone(world: SyncWorld) -> None:
    held = _connected(world, "held")
    free = _connected(world, "free")
    orphaned = _connected(world, "orphaned")
    unnamed = _connected(world, "unnamed")
    _hold(world, held, "running", utcnow() + LEASE, this_process())
    _hold(world, orphaned, "killed", utcnow() + LEASE, exited_process())
    _hold(world, unnamed, "running, no process recorded", utcnow() + LEASE)
    queue = current_queue()
    every = (held, free, orphaned, unnamed)
    before = {mailbox: _pending_syncs(mailbox) for mailbox in every}
    schedule_syncs(queue.context)
    queued = {mailbox: _pending_syncs(mailbox) - before[mailbox] for mailbox in every}
    # The killed holder's mailbox is queued at once, and its sync takes the lease over.
    assert queued == {held: 0, free: 1, orphaned: 1, unnamed: 0}
    assert sync_mailbox_job(queue.context, mailbox_id=str(orphaned))["outcome"] == mailboxes.STATUS_CONNECTED
    assert _row(world, orphaned).sync_holder is None


def test_the_heartbeat_renews_and_notices_a_takeover(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "beat")
    lease = dt.timedelta(seconds=0.6)
    with session_scope(world.sessions) as session:
        assert _claim(session, mailbox_id, "beating", utcnow(), lease=lease)
    first = _row(world, mailbox_id).sync_leased_until
    assert first is not None
    with sync_lease.Heartbeat(world.sessions, mailbox_id, "beating", lease) as heartbeat:
        deadline = time.monotonic() + 10
        while (_row(world, mailbox_id).sync_leased_until or first) <= first and time.monotonic() < deadline:
            heartbeat.lost.wait(0.05)
        assert (_row(world, mailbox_id).sync_leased_until or first) > first
        _hold(world, mailbox_id, "thief", utcnow() + LEASE)
        assert heartbeat.lost.wait(10)
    assert _row(world, mailbox_id).sync_holder == "thief"


def test_a_mailbox_that_has_not_synced_for_too_long_is_stalled(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "stalled")
    after = mailboxes.stalled_after(world.settings)
    row = _row(world, mailbox_id)
    assert mailboxes.sync_stalled_since(row, utcnow(), after) is None
    later = row.created_at + after + dt.timedelta(minutes=1)
    assert mailboxes.sync_stalled_since(row, later, after) == row.created_at
    row.last_synced_at = later - dt.timedelta(minutes=2)
    assert mailboxes.sync_stalled_since(row, later, after) is None
    row.status = mailboxes.STATUS_NEEDS_RECONNECT
    assert mailboxes.sync_stalled_since(row, later + after, after) is None  # its status says why

    long_ago = utcnow() - after - dt.timedelta(minutes=5)
    with session_scope(world.sessions) as session:
        session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(created_at=long_ago, last_synced_at=long_ago)
        )
    with TestClient(create_app(world.settings, queue=current_queue())) as client:
        sync = client.get("/health").json()["database"]["mailbox_sync"]
    assert sync["stalled"] >= 1
    assert sync["ok"] is False


def test_a_stalled_mailbox_shows_on_the_email_page_and_in_mailbox_list(
    client: TestClient, team: Team, box: SecretBox, sessions: sessionmaker[Session], settings: Settings
) -> None:
    with session_scope(sessions) as session:
        mailbox = mailboxes.connect_mailbox(
            session,
            Actor.operator(team.workspace_id),
            box,
            user_id=team.admin_id,
            provider="imap",
            address="admin@team-a.example",
            connection={"host": "127.0.0.1", "port": 1, "security": "plain", "username": "admin"},
            credentials={"password": "p"},
            folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX)],
        )
        mailbox_id = mailbox.id
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    assert "Sync stalled" not in client.get("/profile/email").text

    # No worker has synced it for longer than the setting allows (none runs, or one is stuck).
    long_ago = utcnow() - mailboxes.stalled_after(settings) - dt.timedelta(minutes=5)
    with session_scope(sessions) as session:
        session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(created_at=long_ago))
    page = client.get("/profile/email").text
    assert "Sync stalled" in page
    assert f"no sync has succeeded since {long_ago:%Y-%m-%d %H:%M} UTC" in page

    listed = subprocess.run(
        [sys.executable, "-m", "touchline.cli", "mailbox", "list", "--workspace", str(team.workspace_id)],
        env={**touchline_environment(settings), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert f"stalled: no sync succeeded since {long_ago:%Y-%m-%d %H:%M}" in listed.stdout


def test_a_stopping_worker_hands_its_mailbox_back_and_queues_the_rest(world: SyncWorld) -> None:
    mailbox_id = _connected(world, "handback", messages=3)
    queue = current_queue()
    pending = _pending_syncs(mailbox_id)
    stopping.set()  # what SIGTERM sets in a worker
    try:
        counts = sync_mailbox_job(queue.context, mailbox_id=str(mailbox_id))
    finally:
        stopping.clear()
    assert counts == {"outcome": "handed_back"}
    row = _row(world, mailbox_id)
    assert (row.sync_holder, row.sync_leased_until, row.last_synced_at) == (None, None, None)
    assert _pending_syncs(mailbox_id) == pending + 1  # the rest of the run, for the next worker
    assert (
        sync_mailbox_job(queue.context, mailbox_id=str(mailbox_id))["outcome"] == mailboxes.STATUS_CONNECTED
    )
    assert len(world.subjects()) == 3
