"""Invitations and password reset links: a single-use, expiring link with which one user sets their
password and is signed in.

Only the token's digest is stored, as for logins; the plain token exists in the link alone. With a
relay set, the link is emailed to the user (the `outbound.account_link_email` job, which receives the
token sealed with the workspace's secret key); otherwise it is given once to the admin to pass on.
A new link for a user and purpose revokes the earlier ones, and a used link revokes the user's others.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from touchline.config import Settings, relay_configured
from touchline.kit.crypto import SecretBox, hash_password, new_token, token_digest
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.models import AccountLink, User
from touchline.worker import enqueue
from touchline.workspace import user_sessions
from touchline.workspace.permissions import Actor, Permission
from touchline.workspace.service import add_user as add_workspace_user
from touchline.workspace.service import check_password, get_user, record_audit

Purpose = Literal["invitation", "reset"]
INVITATION: Final = "invitation"
RESET: Final = "reset"
EMAIL_JOB: Final = "outbound.account_link_email"
PATHS: Final[dict[str, str]] = {INVITATION: "/invitations", RESET: "/password-reset"}
ASK_AN_ADMIN: Final = "Ask a workspace admin for a new link."


class UnusableLinkError(InvalidInputError):
    """The link cannot be used (expired, used, revoked, unknown); the message says which."""


@dataclass(frozen=True)
class IssuedLink:
    link: AccountLink
    url: str
    """The whole link. The admin is shown it only when it was not emailed."""
    emailed: bool


def link_url(settings: Settings, purpose: str, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}{PATHS[purpose]}/{token}"


def valid_for(settings: Settings, purpose: str) -> timedelta:
    if purpose == INVITATION:
        return timedelta(days=settings.invitation_valid_days)
    return timedelta(hours=settings.password_reset_valid_hours)


def _revoke_pending(session: Session, user_id: uuid.UUID, now: datetime, purpose: str | None = None) -> int:
    statement = (
        update(AccountLink)
        .where(
            AccountLink.user_id == user_id,
            AccountLink.used_at.is_(None),
            AccountLink.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if purpose is not None:
        statement = statement.where(AccountLink.purpose == purpose)
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def issue(
    session: Session, actor: Actor, settings: Settings, user_id: uuid.UUID, purpose: Purpose, now: datetime
) -> IssuedLink:
    """A new link for the user (an invitation for a user without a password, a reset link for one
    with); earlier pending links of the same purpose stop working. A reset also ends the user's
    logins and its old password at once: it is often asked because someone else may know it."""
    actor.require(Permission.ADMIN_ACCESS)
    user = get_user(session, actor, user_id)
    if not user.active:
        raise ConflictError(f"{user.email} is deactivated; reactivate the user first")
    if purpose == INVITATION and user.password_hash:
        raise ConflictError(f"{user.email} already has a password; send a password reset link instead")
    if purpose == RESET:
        if user.id == actor.user_id:
            raise ConflictError("change your own password on your profile page")
        user.password_hash = None
        user_sessions.end_all(session, user.id, now)
    _revoke_pending(session, user.id, now, purpose)
    token = new_token("tlinv" if purpose == INVITATION else "tlrst")
    emailed = relay_configured(settings)
    link = AccountLink(
        workspace_id=actor.workspace_id,
        user_id=user.id,
        purpose=purpose,
        token_digest=token_digest(token),
        created_by=actor.user_id,
        expires_at=now + valid_for(settings, purpose),
        emailed=emailed,
    )
    session.add(link)
    session.flush()
    if emailed:
        # Sealed, so neither the outbox row nor the queue holds a usable link.
        sealed = SecretBox(settings.secret_keys).encrypt(token)
        enqueue(session, EMAIL_JOB, link_id=str(link.id), sealed_token=sealed)
    record_audit(
        session,
        actor,
        f"user.{purpose}",
        "user",
        user.id,
        {"email": user.email, "emailed": emailed, "expires_at": link.expires_at.isoformat()},
    )
    return IssuedLink(link, link_url(settings, purpose, token), emailed)


def revoke(session: Session, actor: Actor, user_id: uuid.UUID, purpose: Purpose, now: datetime) -> None:
    """Withdraws the user's pending link of this purpose."""
    actor.require(Permission.ADMIN_ACCESS)
    user = get_user(session, actor, user_id)
    if not _revoke_pending(session, user.id, now, purpose):
        what = "invitation" if purpose == INVITATION else "password reset link"
        raise NotFoundError(f"{user.email} has no pending {what}")
    record_audit(session, actor, f"user.{purpose}_revoke", "user", user.id, {"email": user.email})
    session.flush()


def pending(session: Session, actor: Actor, now: datetime) -> list[AccountLink]:
    """The links that still work, newest first."""
    actor.require(Permission.ADMIN_ACCESS)
    return list(
        session.scalars(
            select(AccountLink)
            .where(
                AccountLink.workspace_id == actor.workspace_id,
                AccountLink.used_at.is_(None),
                AccountLink.revoked_at.is_(None),
                AccountLink.expires_at > now,
            )
            .order_by(AccountLink.created_at.desc())
        )
    )


@dataclass(frozen=True)
class OpenLink:
    link: AccountLink
    user: User


def open_link(session: Session, purpose: str, token: str, now: datetime) -> OpenLink:
    """The link behind `token` when it still works; otherwise UnusableLinkError says why."""
    link = session.scalar(select(AccountLink).where(AccountLink.token_digest == token_digest(token)))
    if link is None or link.purpose != purpose:
        raise UnusableLinkError(f"This link is not known. {ASK_AN_ADMIN}")
    if link.used_at is not None:
        raise UnusableLinkError(f"This link was already used. {ASK_AN_ADMIN}")
    if link.revoked_at is not None:
        raise UnusableLinkError(f"This link was withdrawn or replaced by a newer one. {ASK_AN_ADMIN}")
    if link.expires_at <= now:
        raise UnusableLinkError(f"This link has expired. {ASK_AN_ADMIN}")
    user = session.get(User, link.user_id)
    if user is None or not user.active:
        raise UnusableLinkError(f"This account is deactivated. {ASK_AN_ADMIN}")
    return OpenLink(link, user)


def accept(
    session: Session,
    settings: Settings,
    purpose: str,
    token: str,
    *,
    password: str,
    name: str | None,
    now: datetime,
) -> str:
    """Sets the password (and, given, the name), uses the link up and signs the user in: returns
    the new login's cookie id."""
    opened = open_link(session, purpose, token, now)
    check_password(password)
    user = opened.user
    user.password_hash = hash_password(password)
    if name is not None and name.strip():
        user.name = name.strip()
    opened.link.used_at = now
    session.flush()
    _revoke_pending(session, user.id, now)
    user_sessions.end_all(session, user.id, now)
    record_audit(
        session,
        Actor(user.workspace_id, user.id, user.email, frozenset()),
        f"user.{purpose}_accept",
        "user",
        user.id,
    )
    session.flush()
    return user_sessions.start(session, user, user_sessions.SessionLimits.of(settings), now)


def add_user(
    session: Session,
    actor: Actor,
    settings: Settings,
    email: str,
    *,
    name: str,
    role: str | uuid.UUID,
    password: str | None,
    now: datetime,
) -> tuple[User, IssuedLink | None]:
    """Adds the user; one added without a password is invited to set one (else they could never
    sign in)."""
    user = add_workspace_user(session, actor, email, name=name, role=role, password=password)
    if password:
        return user, None
    return user, issue(session, actor, settings, user.id, INVITATION, now)
