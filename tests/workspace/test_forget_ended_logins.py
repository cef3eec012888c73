"""Housekeeping deletes only logins that can no longer be resumed and throttle runs that are over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.db import session_scope
from touchline.kit.backoff import BackoffPolicy
from touchline.models import Throttle, User, UserSession
from touchline.workspace import throttle, user_sessions

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
LIMITS = user_sessions.SessionLimits(idle=timedelta(hours=12), lifetime=timedelta(days=14))
WINDOW = timedelta(minutes=15)


def test_ended_logins_are_forgotten_and_live_ones_kept(sessions: sessionmaker[Session], team: Team) -> None:
    with session_scope(sessions) as session:
        admin = session.get(User, team.admin_id)
        assert admin is not None
        live = user_sessions.start(session, admin, LIMITS, NOW - timedelta(hours=11))
        logged_out = user_sessions.start(session, admin, LIMITS, NOW - timedelta(hours=1))
        user_sessions.end(session, logged_out, NOW)
        user_sessions.start(session, admin, LIMITS, NOW - timedelta(hours=13))  # idle too long
        user_sessions.start(session, admin, LIMITS, NOW - timedelta(days=15))  # past its lifetime
    with session_scope(sessions) as session:
        assert user_sessions.forget_ended(session, LIMITS, NOW) == 3
    with session_scope(sessions) as session:
        assert len(session.scalars(select(UserSession)).all()) == 1
        assert user_sessions.resume(session, live, LIMITS, NOW) is not None


def test_only_finished_throttle_runs_are_forgotten(sessions: sessionmaker[Session]) -> None:
    policy = BackoffPolicy(attempts=2, window=WINDOW)
    with session_scope(sessions) as session:
        throttle.count(session, "old", policy, NOW - timedelta(minutes=20))
        throttle.count(session, "recent", policy, NOW - timedelta(minutes=5))
        for _ in range(2):  # blocked 15 minutes ago, for a minute: quiet for only 14
            throttle.count(session, "blocked-lately", policy, NOW - timedelta(minutes=15))
    with session_scope(sessions) as session:
        assert throttle.forget_over(session, WINDOW, NOW) == 1
    with session_scope(sessions) as session:
        assert sorted(session.scalars(select(Throttle.key)).all()) == ["blocked-lately", "recent"]
