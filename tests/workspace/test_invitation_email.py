"""With a relay set, an invitation is emailed (a real SMTP sink receives it) and its link is not
shown; the email is plain, well formed, and its link signs the invitee in."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.jobs_seam import sent_jobs
from tests.services.smtp_sink import SmtpSink, open_relay
from touchline.config import Settings
from touchline.db import session_scope
from touchline.outbound.account_links.tasks import email_account_link
from touchline.worker import JobContext, current_queue
from touchline.workspace import account_links, service
from touchline.workspace.permissions import Actor, Permission

__all__ = ["open_relay"]


@pytest.fixture
def settings(settings: Settings, open_relay: SmtpSink) -> Settings:
    return settings.model_copy(
        update={
            "relay_smtp_host": "127.0.0.1",
            "relay_smtp_port": open_relay.port,
            "relay_smtp_security": "plain",
        }
    )


@pytest.fixture
def run_email_jobs(settings: Settings, sessions: sessionmaker[Session]) -> Callable[[], int]:
    def run() -> int:
        queue = current_queue()
        jobs = sent_jobs(queue, account_links.EMAIL_JOB)
        for kwargs in jobs:
            email_account_link(JobContext(settings, sessions, queue), **kwargs)
        return len(jobs)

    return run


def test_an_invitation_goes_through_the_relay_and_its_link_works(
    client: TestClient,
    team: Team,
    open_relay: SmtpSink,
    run_email_jobs: Callable[[], int],
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        admin = Actor(team.workspace_id, team.admin_id, "admin@team-a.example", frozenset(Permission))
        service.update_user(session, admin, team.admin_id, name="Ada\r\nBcc: victim@evil.example")
    answer = client.post(
        "/api/v1/users", json={"email": "nia@team-a.example", "name": "Nia"}, headers=team.headers()
    )
    assert answer.status_code == 201, answer.text
    invitation = answer.json()["invitation"]
    assert invitation["emailed"] is True
    assert invitation["link"] is None
    # The outbox row and the queue hold the token sealed, never the link itself.
    [queued] = sent_jobs(current_queue(), account_links.EMAIL_JOB)
    assert "tlinv_" not in str(queued)

    assert run_email_jobs() == 1
    [received] = open_relay.received
    assert received.recipients == ("nia@team-a.example",)
    message = received.message
    assert message["To"] == "Nia <nia@team-a.example>"
    assert message["Subject"] == "You are invited to Team A on touchline"
    # The admin's name was typed with a line break: it stays inside the From name.
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Ada Bcc: victim@evil.example", "admin@team-a.example")
    assert message["Bcc"] is None
    assert message.get_content_type() == "text/plain"
    text = received.part("text/plain")
    match = re.search(r"http://127\.0\.0\.1:8000(/invitations/tlinv_[\w-]+)", text)
    assert match, text

    page = client.get(match.group(1))
    assert page.status_code == 200
    assert "nia@team-a.example" in page.text


def test_a_revoked_invitation_is_not_emailed(
    client: TestClient, team: Team, open_relay: SmtpSink, run_email_jobs: Callable[[], int]
) -> None:
    client.post(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    client.delete(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    assert run_email_jobs() == 1
    assert open_relay.received == []
