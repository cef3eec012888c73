"""A sync killed at random points and run again stores exactly what one clean run stores."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import touchline_environment
from tests.services.dovecot import DovecotServer
from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.timeline import email_records
from touchline.kit.crypto import SecretBox
from touchline.models import Email
from touchline.workspace import service
from touchline.workspace.permissions import Actor

pytestmark = pytest.mark.dovecot

NOW = dt.datetime.now(dt.UTC)


def _mail(count: int) -> list[bytes]:
    rng = random.Random(7)
    messages = []
    for number in range(count):
        customer = rng.random() < 0.6
        sender = f"Person {number} <p{number}@{CUSTOMER if customer else 'elsewhere.example'}>"
        parent = f"<m{number - 1}@{CUSTOMER}>" if number and rng.random() < 0.3 else None
        messages.append(
            message(
                f"Topic {number % 17}",
                sender=sender,
                message_id=f"<m{number}@{CUSTOMER}>",
                in_reply_to=parent,
                body="word " * rng.randint(10, 2000),
            )
        )
    return messages


def _snapshot(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> list[tuple[object, ...]]:
    """The store, with workspace-specific ids replaced by what they stand for."""
    with session_scope(sessions) as session:
        records = email_records(session, workspace_id)
    conversations: dict[object, int] = {}
    for record in sorted(records, key=lambda r: str(r["message_id"])):
        conversations.setdefault(record["conversation_id"], len(conversations))
    return sorted(
        (
            record["message_id"],
            record["subject"],
            len(record["companies"]),
            tuple(record["contacts"]),
            len(record["holders"]),  # type: ignore[arg-type]
            tuple(record["folders"]),  # type: ignore[arg-type]
            conversations[record["conversation_id"]],
        )
        for record in records
    )


def _stored(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> int:
    with session_scope(sessions) as session:
        count = select(func.count()).select_from(Email).where(Email.workspace_id == workspace_id)
        return session.scalar(count) or 0


def _workspace(world: SyncWorld, name: str, box: SecretBox) -> tuple[SyncWorld, uuid.UUID]:
    with session_scope(world.sessions) as session:
        workspace = service.create_workspace(
            session, box, name, internal_domains=[INTERNAL], inbound_domain="log.test.example"
        )
        company = service.create_company(
            session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
        )
        ids = workspace.id, company.id
    return SyncWorld(world.sessions, box, world.dovecot, ids[0], ids[1]), ids[0]


def test_killed_syncs_then_a_rerun_store_what_one_clean_run_stores(
    world: SyncWorld, settings: Settings, box: SecretBox, dovecot: DovecotServer
) -> None:
    mail = _mail(600)
    crashy, crashy_id = _workspace(world, "Crashy", box)
    clean, clean_id = _workspace(world, "Clean", box)
    users = {}
    for name, target in (("crashy", crashy), ("clean", clean)):
        user_id, imap = target.add_user(name)
        for raw in mail:
            dovecot.append(imap, "INBOX", raw, received_at=NOW - dt.timedelta(hours=1))
        users[name] = target.connect(user_id, imap)

    clean.sync(users["clean"])
    expected = _snapshot(world.sessions, clean_id)
    assert len(expected) > 100

    env = touchline_environment(settings)
    command = [sys.executable, "-m", "touchline.cli", "sync", "--user", f"crashy@{INTERNAL}", "--once"]
    rng = random.Random(11)
    kills = 0
    for _ in range(4):
        # Each run is killed a random moment after it has committed a batch, so it dies in the middle
        # of the next one (fetching, storing or committing), however fast the machine is.
        committed = _stored(world.sessions, crashy_id)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and _stored(world.sessions, crashy_id) == committed:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    assert kills >= 1, "no run was interrupted; the test would prove nothing"
    assert _snapshot(world.sessions, crashy_id) == expected
