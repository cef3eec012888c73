"""Housekeeping of the sign-in tables."""

from __future__ import annotations

from datetime import timedelta

from touchline.db import session_scope
from touchline.models.base import utcnow
from touchline.worker import JobContext, job
from touchline.workspace import throttle, user_sessions


@job("workspace.forget_ended_logins", retries=0, every_minutes=60)
def forget_ended_logins(context: JobContext) -> None:
    """Ended logins and finished throttle runs answer as missing rows do; deleting them keeps both small."""
    now = utcnow()
    with session_scope(context.sessions) as session:
        user_sessions.forget_ended(session, user_sessions.SessionLimits.of(context.settings), now)
        throttle.forget_over(session, timedelta(seconds=context.settings.throttle_window_seconds), now)
