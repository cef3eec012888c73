"""Page logins recorded in the database: the cookie carries only a random id, this table decides.

Logging out, a password change, an admin's reset or deactivation end the rows; a copied or replayed
cookie is worth nothing once its row has ended. Several API processes share the rows.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.kit.crypto import token_digest
from touchline.models import User, UserSession

# Last-seen is written at most this often per login, not on every request; idle expiry is that coarse.
LAST_SEEN_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionLimits:
    idle: timedelta
    lifetime: timedelta

    @classmethod
    def of(cls, settings: Settings) -> SessionLimits:
        return cls(
            idle=timedelta(seconds=settings.session_idle_seconds),
            lifetime=timedelta(seconds=settings.session_max_age_seconds),
        )


def start(session: Session, user: User, limits: SessionLimits, now: datetime) -> str:
    """A new login for `user`; returns the id for the cookie, which is stored only as a digest."""
    token = secrets.token_urlsafe(32)
    session.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now))
    session.add(
        UserSession(
            user_id=user.id,
            id_digest=token_digest(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + limits.lifetime,
        )
    )
    session.flush()
    return token


def _find(session: Session, token: str) -> UserSession | None:
    return session.scalar(select(UserSession).where(UserSession.id_digest == token_digest(token)))


def resume(
    session: Session, token: str, limits: SessionLimits, now: datetime
) -> tuple[UserSession, User] | None:
    """The login and its active user, or None when it ended, expired or was never made."""
    row = _find(session, token)
    if (
        row is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or row.last_seen_at + limits.idle <= now
    ):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at >= LAST_SEEN_PRECISION:
        row.last_seen_at = now
    return row, user


def end(session: Session, token: str, now: datetime) -> None:
    row = _find(session, token)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now


def end_all(session: Session, user_id: uuid.UUID, now: datetime, *, keep: str | None = None) -> None:
    """Ends every login of `user_id`, except the one whose cookie id is `keep`."""
    statement = (
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if keep is not None:
        statement = statement.where(UserSession.id_digest != token_digest(keep))
    session.execute(statement)


def forget_ended(session: Session, limits: SessionLimits, now: datetime) -> int:
    """Deletes the logins that can no longer be resumed: a missing row answers the same."""
    result = session.execute(
        delete(UserSession)
        .where(
            or_(
                UserSession.revoked_at.is_not(None),
                UserSession.expires_at <= now,
                UserSession.last_seen_at <= now - limits.idle,
            )
        )
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount
