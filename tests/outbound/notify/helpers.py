"""Setting a member's notifications and telling them about events, as the engagement refresh does."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import NotificationDelivery
from touchline.outbound.notify import service
from touchline.outbound.notify.service import Notice, SettingsChange
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


def member_actor(sessions: sessionmaker[Session], team: Team, who: str = "member") -> Actor:
    with session_scope(sessions) as session:
        user = workspace_service.get_user(
            session, Actor.operator(team.workspace_id), getattr(team, f"{who}_id")
        )
        return workspace_service.actor_for(user)


def configure(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    team: Team,
    change: SettingsChange,
    now: datetime,
) -> str | None:
    """Sets the member's own settings; returns the new webhook secret when one was generated."""
    actor = member_actor(sessions, team)
    with session_scope(sessions) as session:
        _, secret = service.update_settings(session, actor, box, settings, team.member_id, change, now)
    return secret


def notice(
    outbound_id: uuid.UUID, at: datetime, kind: str = "click", detail: str = "https://acme.example/pricing"
) -> Notice:
    return Notice(
        kind=kind,
        outbound_id=outbound_id,
        subject="Renewal plans",
        recipient="jo@customer.example",
        at=at,
        detail=detail,
    )


def deliveries(sessions: sessionmaker[Session], channel: str | None = None) -> list[NotificationDelivery]:
    with session_scope(sessions) as session:
        query = select(NotificationDelivery).order_by(NotificationDelivery.id)
        if channel is not None:
            query = query.where(NotificationDelivery.channel == channel)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows
