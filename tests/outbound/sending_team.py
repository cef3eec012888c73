"""A team for the From rules: mailboxes, a shared success@ account and stored conversations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import Folder, SpecialUse
from touchline.models import Conversation, Email
from touchline.workspace import service
from touchline.workspace.permissions import Actor


@dataclass(frozen=True)
class SendingTeam:
    team: Team
    success_id: uuid.UUID
    success_token: str
    bob_id: uuid.UUID
    bob_token: str
    company_id: uuid.UUID

    def headers(self, who: str) -> dict[str, str]:
        if who in {"success", "bob"}:
            return {"Authorization": f"Bearer {getattr(self, f'{who}_token')}"}
        return self.team.headers(who)


def connect(
    session: Session, box: SecretBox, workspace_id: uuid.UUID, user_id: uuid.UUID, address: str
) -> uuid.UUID:
    mailbox = mailboxes.connect_mailbox(
        session,
        Actor.operator(workspace_id),
        box,
        user_id=user_id,
        provider="imap",
        address=address,
        connection={"host": "127.0.0.1", "port": 143, "security": "plain", "username": address},
        credentials={"password": "x"},
        folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX)],
    )
    return mailbox.id


def make_sending_team(sessions: sessionmaker[Session], box: SecretBox, team: Team) -> SendingTeam:
    """Adds success@ (a shared account, public) and bob@ (private), both Members with mailboxes."""
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        ids: dict[str, uuid.UUID] = {}
        tokens: dict[str, str] = {}
        for who, name in (("success", "Success Team"), ("bob", "Bob")):
            user = service.add_user(session, operator, f"{who}@team-a.example", name=name, role="Member")
            ids[who] = user.id
            tokens[who], _ = service.create_api_token(session, service.actor_for(user), "tests")
            connect(session, box, team.workspace_id, user.id, f"{who}@team-a.example")
        success = service.get_user(session, operator, ids["success"])
        success.public_account_usage = True
        company = service.create_company(session, operator, "Globex", domains=["globex.example"])
        return SendingTeam(team, ids["success"], tokens["success"], ids["bob"], tokens["bob"], company.id)


def store_conversation(
    sessions: sessionmaker[Session], workspace_id: uuid.UUID, key: str, participants: list[str]
) -> uuid.UUID:
    """A stored two-email conversation between a customer and `participants`; returns the last email."""
    with session_scope(sessions) as session:
        conversation = Conversation(workspace_id=workspace_id, subject=f"Renewal {key}")
        session.add(conversation)
        session.flush()
        first = Email(
            workspace_id=workspace_id,
            dedup_key=f"<{key}-1@globex.example>",
            message_id=f"<{key}-1@globex.example>",
            subject=f"Renewal {key}",
            sent_at=datetime(2026, 12, 1, tzinfo=UTC),
            from_address="ceo@globex.example",
            to_addresses=participants[:1],
            cc_addresses=participants[1:],
            conversation_id=conversation.id,
            source="sync",
        )
        last = Email(
            workspace_id=workspace_id,
            dedup_key=f"<{key}-2@globex.example>",
            message_id=f"<{key}-2@globex.example>",
            subject=f"Re: Renewal {key}",
            sent_at=datetime(2026, 12, 2, tzinfo=UTC),
            from_address="ceo@globex.example",
            to_addresses=participants[:1],
            conversation_id=conversation.id,
            source="sync",
        )
        session.add_all([first, last])
        session.flush()
        return last.id
