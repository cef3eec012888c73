"""A sync killed at random points and run again stores exactly what one clean run stores, and a sync
whose bodies reader processes read stores what one read in the worker stores."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import touchline_environment
from tests.services.dovecot import DovecotServer
from tests.sync.conftest import INTERNAL, SyncWorld
from tests.sync.stores import NOW, mail_of, snapshot, stored_count, workspace_beside
from touchline.config import Settings
from touchline.inbound.readers import configure_readers, readers
from touchline.kit.crypto import SecretBox

pytestmark = pytest.mark.dovecot


def test_reader_processes_store_what_the_worker_reading_alone_stores(
    world: SyncWorld, box: SecretBox, dovecot: DovecotServer
) -> None:
    mail = mail_of(300)
    stores = {}
    before = readers().processes
    try:
        for processes in (0, 2):
            target, workspace_id = workspace_beside(world, f"Readers {processes}", box)
            user_id, imap = target.add_user(f"readers{processes}")
            for raw in mail:
                dovecot.append(imap, "INBOX", raw, received_at=NOW - dt.timedelta(hours=1))
            pool = configure_readers(processes)
            report = target.sync(target.connect(user_id, imap))
            assert report.error is None
            assert report.quarantined == 0
            assert len(pool.process_ids()) == processes
            stores[processes] = snapshot(world.sessions, workspace_id)
    finally:
        configure_readers(before)
    assert len(stores[0]) > 100
    assert stores[2] == stores[0]


def test_killed_syncs_then_a_rerun_store_what_one_clean_run_stores(
    world: SyncWorld, settings: Settings, box: SecretBox, dovecot: DovecotServer
) -> None:
    mail = mail_of(600)
    crashy, crashy_id = workspace_beside(world, "Crashy", box)
    clean, clean_id = workspace_beside(world, "Clean", box)
    users = {}
    for name, target in (("crashy", crashy), ("clean", clean)):
        user_id, imap = target.add_user(name)
        for raw in mail:
            dovecot.append(imap, "INBOX", raw, received_at=NOW - dt.timedelta(hours=1))
        users[name] = target.connect(user_id, imap)

    clean.sync(users["clean"])
    expected = snapshot(world.sessions, clean_id)
    assert len(expected) > 100

    # `touchline sync` holds the mailbox's lease as a worker does. A killed run's lease runs for two
    # minutes (the default), and the next run, on the same host, takes it over at once.
    env = touchline_environment(settings)
    command = [sys.executable, "-m", "touchline.cli", "sync", "--user", f"crashy@{INTERNAL}", "--once"]
    rng = random.Random(11)
    kills = 0
    for _ in range(4):
        # Each run is killed a random moment after it has committed a batch, so it dies in the middle
        # of the next one (fetching, storing or committing), however fast the machine is.
        committed = stored_count(world.sessions, crashy_id)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and stored_count(world.sessions, crashy_id) == committed:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "syncing it now" not in finished.stdout  # the killed run's lease was taken over
    assert kills >= 1, "no run was interrupted; the test would prove nothing"
    assert snapshot(world.sessions, crashy_id) == expected
