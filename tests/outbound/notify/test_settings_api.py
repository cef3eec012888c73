"""The API of a user's own notification settings and delivery log: self only, the secret shown once."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.outbound.notify.conftest import WebhookReceiver
from tests.outbound.notify.helpers import member_actor, notice
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import PermissionDeniedError
from touchline.outbound.notify import service, tasks
from touchline.outbound.notify.service import SettingsChange


@pytest.fixture
def webhook_app(app: FastAPI) -> FastAPI:
    app.state.settings = app.state.settings.model_copy(update={"allow_private_webhook_hosts": True})
    return app


def test_defaults_then_changes_with_the_secret_shown_once(
    webhook_app: FastAPI, client: TestClient, team: Team, receiver: WebhookReceiver
) -> None:
    member = team.headers("member")
    defaults = client.get("/api/v1/me/notifications", headers=member).json()
    assert defaults["channels"] == {
        "browser": ["open", "click", "reply", "bounce"],
        "email": [],
        "slack": [],
        "webhook": [],
    }
    assert (defaults["coalesce_minutes"], defaults["webhook_secret_set"], defaults["email_available"]) == (
        10,
        False,
        False,
    )
    assert "TOUCHLINE_RELAY_SMTP_HOST" in defaults["email_unavailable_reason"]
    refused = client.put(
        "/api/v1/me/notifications",
        json={"channels": {"webhook": ["reply"]}, "webhook_url": receiver.url},
        headers=member,
    )
    assert refused.status_code == 422
    assert "generate the signing secret first" in refused.json()["detail"]
    changed = client.put(
        "/api/v1/me/notifications",
        json={
            "channels": {"browser": ["click"], "webhook": ["reply", "bounce"]},
            "webhook_url": receiver.url,
            "generate_secret": True,
            "coalesce_minutes": 30,
        },
        headers=member,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["webhook_secret"].startswith("whsec_")
    assert (body["webhook_host"], body["webhook_secret_set"], body["coalesce_minutes"]) == (
        f"127.0.0.1:{receiver.port}",
        True,
        30,
    )
    again = client.get("/api/v1/me/notifications", headers=member).json()
    assert again["webhook_secret"] is None
    assert again["channels"]["webhook"] == ["reply", "bounce"]
    # Email needs the relay, which is not configured.
    no_relay = client.put("/api/v1/me/notifications", json={"channels": {"email": ["reply"]}}, headers=member)
    assert no_relay.status_code == 422
    assert "TOUCHLINE_RELAY_SMTP_HOST" in no_relay.json()["detail"]
    unknown = client.put(
        "/api/v1/me/notifications", json={"channels": {"browser": ["forward"]}}, headers=member
    )
    assert unknown.status_code == 422


def test_settings_are_the_users_own_admins_included(
    client: TestClient,
    team: Team,
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    clock: FakeClock,
) -> None:
    assert client.put(
        "/api/v1/me/notifications", json={"channels": {"browser": ["bounce"]}}, headers=team.headers("admin")
    ).json()["channels"]["browser"] == ["bounce"]
    # The admin's change was their own: the member keeps the defaults.
    member = client.get("/api/v1/me/notifications", headers=team.headers("member")).json()
    assert member["channels"]["browser"] == ["open", "click", "reply", "bounce"]
    admin = member_actor(sessions, team, "admin")
    with (
        session_scope(sessions) as session,
        pytest.raises(PermissionDeniedError, match="only the user themself"),
    ):
        service.update_settings(
            session, admin, box, settings, team.member_id, SettingsChange({"browser": ()}), clock.now
        )


def test_the_delivery_log_lists_the_callers_own_deliveries_newest_first(
    client: TestClient,
    team: Team,
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    sent_email: uuid.UUID,
    clock: FakeClock,
) -> None:
    tasks.record_and_deliver(
        sessions,
        box,
        settings,
        team.workspace_id,
        team.member_id,
        [
            notice(sent_email, clock.now),
            notice(sent_email, clock.now, kind="reply", detail="Re: Renewal plans"),
        ],
        clock=clock,
    )
    log = client.get("/api/v1/me/notifications/deliveries", headers=team.headers("member")).json()
    assert [(row["channel"], row["kind"], row["status"], row["outbound_id"]) for row in log] == [
        ("browser", "reply", "sent", str(sent_email)),
        ("browser", "click", "sent", str(sent_email)),
    ]
    assert client.get("/api/v1/me/notifications/deliveries", headers=team.headers("admin")).json() == []
    assert (
        client.get("/api/v1/me/notifications/deliveries?limit=0", headers=team.headers("member")).status_code
        == 422
    )
