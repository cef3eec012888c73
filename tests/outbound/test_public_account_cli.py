"""`touchline public-account on|off`: the operator switches it acting as the user, under the same rules."""

from __future__ import annotations

import subprocess
import sys
import uuid

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, touchline_environment
from tests.outbound.sending_team import connect
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import User


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "touchline.cli", "public-account", *args],
        env=touchline_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _is_public(sessions: sessionmaker[Session], user_id: uuid.UUID) -> bool:
    with session_scope(sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.public_account_usage


def test_public_account_on_and_off_from_the_command_line(
    app: FastAPI, settings: Settings, sessions: sessionmaker[Session], box: SecretBox, team: Team
) -> None:
    """`app` configures the job queue that connecting a mailbox schedules its first sync on."""
    workspace = "Team A"
    member = ("--workspace", workspace, "--user", "member@team-a.example")
    refused = _run(settings, "on", *member)
    assert refused.returncode == 1
    assert "Connect your mailbox first" in refused.stderr
    viewer = _run(settings, "on", "--workspace", workspace, "--user", "viewer@team-a.example")
    assert viewer.returncode == 1
    assert "Email on my behalf" in viewer.stderr

    with session_scope(sessions) as session:
        connect(session, box, team.workspace_id, team.member_id, "member@team-a.example")
    on = _run(settings, "on", *member)
    assert on.returncode == 0, on.stderr
    assert "member@team-a.example is public" in on.stdout
    assert _is_public(sessions, team.member_id)
    off = _run(settings, "off", *member)
    assert off.returncode == 0, off.stderr
    assert not _is_public(sessions, team.member_id)
    assert _run(settings, "maybe", *member).returncode == 2
