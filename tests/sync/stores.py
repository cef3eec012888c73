"""Stores to compare: mail for a sync, a second workspace beside a test's, and what a store holds."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, message
from touchline.db import session_scope
from touchline.inbound.timeline import email_records
from touchline.kit.crypto import SecretBox
from touchline.models import Email
from touchline.workspace import service
from touchline.workspace.permissions import Actor

NOW = dt.datetime.now(dt.UTC)


def mail_of(count: int) -> list[bytes]:
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


def snapshot(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> list[tuple[object, ...]]:
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


def stored_count(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> int:
    with session_scope(sessions) as session:
        count = select(func.count()).select_from(Email).where(Email.workspace_id == workspace_id)
        return session.scalar(count) or 0


def workspace_beside(world: SyncWorld, name: str, box: SecretBox) -> tuple[SyncWorld, uuid.UUID]:
    with session_scope(world.sessions) as session:
        workspace = service.create_workspace(
            session, box, name, internal_domains=[INTERNAL], inbound_domain="log.test.example"
        )
        company = service.create_company(
            session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
        )
        ids = workspace.id, company.id
    return SyncWorld(world.sessions, box, world.dovecot, ids[0], ids[1], world.settings), ids[0]
