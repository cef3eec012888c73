"""Pages show every time on the workspace's clock: the outbox, one sent email, templates, the home
page's hint; another workspace, still on UTC, sees the same kind of moment in UTC."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Team, sign_in_form
from touchline.db import session_scope
from touchline.models import OutboundEmail, Template
from touchline.models.outbound import OutboundRecipient

SENT_AT = dt.datetime(2026, 12, 6, 20, 30, tzinfo=dt.UTC)
"""05:30 the next morning in Tokyo (UTC+9, no daylight saving)."""


def _sent(app: FastAPI, team: Team, sender: str) -> uuid.UUID:
    with session_scope(app.state.sessions) as session:
        email = OutboundEmail(
            workspace_id=team.workspace_id,
            created_by=team.admin_id,
            sender_choice=sender,
            from_address=sender,
            via="relay",
            subject="Quarterly review",
            idempotency_key=uuid.uuid4().hex,
            message_id=f"<{uuid.uuid4().hex}@example.test>",
            status="sent",
            sent_at=SENT_AT,
            recipients=[
                OutboundRecipient(
                    workspace_id=team.workspace_id, position=0, kind="to", address="jane@acme.example"
                )
            ],
        )
        session.add(email)
        session.add(
            Template(
                workspace_id=team.workspace_id,
                name="review",
                subject="Review",
                html="<p>Hi</p>",
                updated_at=SENT_AT,
            )
        )
        session.flush()
        return email.id


def test_pages_show_times_on_the_workspace_s_clock(
    app: FastAPI, client: TestClient, team: Team, other_team: Team
) -> None:
    changed = client.patch(
        "/api/v1/workspace/settings", json={"time_zone": "Asia/Tokyo"}, headers=team.headers()
    )
    assert changed.status_code == 200, changed.text
    ours = _sent(app, team, "admin@team-a.example")
    theirs = _sent(app, other_team, "admin@team-b.example")

    assert sign_in_form(client, "admin@team-a.example", "admin-password-123", "/").status_code == 303
    assert "Times are in Asia/Tokyo." in client.get("/").text
    outbox = client.get("/outbox").text
    assert "Times are in Asia/Tokyo." in outbox
    assert "2026-12-07 05:30" in outbox
    assert "2026-12-06 20:30" not in outbox
    assert "sent 2026-12-07 05:30 Asia/Tokyo" in client.get(f"/outbox/{ours}").text
    assert "2026-12-07 05:30 JST" in client.get("/templates").text

    client.cookies.clear()
    assert sign_in_form(client, "admin@team-b.example", "admin-password-123", "/").status_code == 303
    outbox = client.get("/outbox").text
    assert "Times are in UTC." in outbox
    assert "2026-12-06 20:30" in outbox
    assert "sent 2026-12-06 20:30 UTC" in client.get(f"/outbox/{theirs}").text
    assert "2026-12-06 20:30 UTC" in client.get("/templates").text
