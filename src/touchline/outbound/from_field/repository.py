"""Queries for the From field: the workspace's users as the From rules see them."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.kit.addresses import InvalidAddressError, normalise_address
from touchline.models import Email, Mailbox, User
from touchline.outbound.compose.senders import TeamUser
from touchline.workspace.permissions import Permission


def _address(user: User, mailbox: Mailbox | None) -> str:
    # Mail leaves through the connected mailbox, so its address is the one the user sends as.
    raw = mailbox.address if mailbox is not None else user.email
    try:
        return normalise_address(raw)
    except InvalidAddressError:
        return raw.strip().lower()


def team_user(user: User, mailbox: Mailbox | None) -> TeamUser:
    return TeamUser(
        user_id=user.id,
        address=_address(user, mailbox),
        name=user.name,
        # A deactivated user's address is nobody's to send from.
        public_account_usage=user.public_account_usage and user.active,
        may_email_on_behalf=Permission.EMAIL_ON_MY_BEHALF.value in user.role.permissions,
        has_mailbox=mailbox is not None,
    )


def team_users(session: Session, workspace_id: uuid.UUID) -> list[TeamUser]:
    rows = session.execute(
        select(User, Mailbox)
        .outerjoin(Mailbox, Mailbox.user_id == User.id)
        .where(User.workspace_id == workspace_id)
        .order_by(User.email)
    ).all()
    return [team_user(user, mailbox) for user, mailbox in rows]


def mailbox_of(session: Session, user_id: uuid.UUID) -> Mailbox | None:
    return session.scalar(select(Mailbox).where(Mailbox.user_id == user_id))


def team_user_of(session: Session, user: User) -> tuple[TeamUser, Mailbox | None]:
    """One user as the From rules see them, with the mailbox that decided their address."""
    mailbox = mailbox_of(session, user.id)
    return team_user(user, mailbox), mailbox


def conversation_participants(session: Session, email: Email) -> set[str]:
    """Every address that wrote or received any email of the conversation `email` belongs to."""
    emails = (
        list(
            session.scalars(
                select(Email).where(
                    Email.workspace_id == email.workspace_id, Email.conversation_id == email.conversation_id
                )
            )
        )
        if email.conversation_id is not None
        else [email]
    )
    participants: set[str] = set()
    for member in emails:
        for raw in (member.from_address or "", *member.to_addresses, *member.cc_addresses):
            try:
                participants.add(normalise_address(raw))
            except InvalidAddressError:
                continue
    return participants
