"""Unsubscribe links (RFC 8058): a GET only asks, the one-click POST or the confirmation unsubscribes,
and only a token this installation issued for that contact is honoured."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email import message_from_bytes
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.signing import SignedTokens
from touchline.models import AuditEntry, Contact
from touchline.outbound.compose.mime import Mailbox, OutgoingEmail, build_message
from touchline.outbound.compose.unsubscribes import carries_unsubscribe_link, unsubscribe_skip_reason
from touchline.outbound.unsubscribe.service import unsubscribe_headers_for, unsubscribe_url
from touchline.workspace import service
from touchline.workspace.permissions import Actor

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _contact(sessions: sessionmaker[Session], team: Team, email: str) -> uuid.UUID:
    with session_scope(sessions) as session:
        return service.create_contact(session, Actor.operator(team.workspace_id), email, name="Jane").id


def _unsubscribed_at(sessions: sessionmaker[Session], contact_id: uuid.UUID) -> datetime | None:
    with session_scope(sessions) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.unsubscribed_at


def _path(app: FastAPI, team: Team, contact_id: uuid.UUID) -> str:
    return urlsplit(
        unsubscribe_url("https://touchline.test", app.state.secret_box, team.workspace_id, contact_id)
    ).path


@pytest.fixture
def jane(sessions: sessionmaker[Session], team: Team) -> uuid.UUID:
    return _contact(sessions, team, "jane@globex.example")


def test_a_get_only_asks(
    app: FastAPI, client: TestClient, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    path = _path(app, team, jane)
    for _ in range(3):  # a link scanner, a preview, the person
        page = client.get(path)
        assert page.status_code == 200
        assert 'method="post"' in page.text
        assert "Unsubscribe?" in page.text
        assert "set-cookie" not in page.headers
    assert _unsubscribed_at(sessions, jane) is None


def test_one_click_post_unsubscribes_without_cookies(
    app: FastAPI, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session], app_clock: FakeClock
) -> None:
    path = _path(app, team, jane)
    with TestClient(app) as mail_client:  # a mail provider's request: no cookie, no form token, no Origin
        response = mail_client.post(path, data=ONE_CLICK)
        assert response.status_code == 200, response.text
        assert not mail_client.cookies
    first = app_clock.now
    assert _unsubscribed_at(sessions, jane) == first
    app_clock.advance(days=1)
    with TestClient(app) as again:  # the link used again (as multipart/form-data) changes nothing
        assert again.post(path, data=ONE_CLICK, files={"empty": ("", b"")}).status_code == 200
    assert _unsubscribed_at(sessions, jane) == first
    with session_scope(sessions) as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.unsubscribe")))
        assert [(entry.target_id, entry.details["via"], entry.actor_user_id) for entry in entries] == [
            (str(jane), "one-click", None)
        ]
        assert entries[0].actor_label == "jane@globex.example (unsubscribe link)"


def test_the_confirmation_button_unsubscribes(
    app: FastAPI, client: TestClient, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    path = _path(app, team, jane)
    done = client.post(path, data={"confirm": "yes"})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    assert _unsubscribed_at(sessions, jane) is not None
    assert "You are unsubscribed" in client.get(path).text


def test_a_post_without_the_one_click_body_changes_nothing(
    app: FastAPI, client: TestClient, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    path = _path(app, team, jane)
    assert client.post(path).status_code == 422
    assert client.post(path, data={"List-Unsubscribe": "yes please"}).status_code == 422
    assert _unsubscribed_at(sessions, jane) is None


def test_altered_forged_and_foreign_tokens_get_404(
    app: FastAPI,
    client: TestClient,
    team: Team,
    other_team: Team,
    jane: uuid.UUID,
    sessions: sessionmaker[Session],
) -> None:
    box: SecretBox = app.state.secret_box
    john = _contact(sessions, team, "john@globex.example")
    outsider = _contact(sessions, other_team, "olga@initech.example")
    path = _path(app, team, jane)
    token = path.removeprefix("/u/")
    stranger = SecretBox([Fernet.generate_key().decode()])
    refused = [
        "/u/" + token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character changed
        "/u/" + token[:10] + token[11:],  # one character dropped
        "/u/not-a-token",
        # Signed by another installation's keys, for a real contact.
        urlsplit(unsubscribe_url("https://x.test", stranger, team.workspace_id, jane)).path,
        # A valid signature, for the contact under another workspace's id, and the other way round.
        _path(app, other_team, jane),
        _path(app, team, outsider),
        # Made for another purpose (the same keys, another kind of link).
        "/u/" + SignedTokens(box, "tracking").issue(team.workspace_id.hex, jane.hex),
        # Made for the right purpose but not naming a workspace and a contact.
        "/u/" + SignedTokens(box, "unsubscribe").issue(jane.hex),
        "/u/" + SignedTokens(box, "unsubscribe").issue("zz", "yy"),
    ]
    for bad in refused:
        assert client.get(bad).status_code == 404, bad
        assert client.post(bad, data=ONE_CLICK).status_code == 404, bad
    for contact in (jane, john, outsider):
        assert _unsubscribed_at(sessions, contact) is None
    # Each contact's own link unsubscribes that contact only.
    assert client.post(_path(app, team, john), data=ONE_CLICK).status_code == 200
    assert _unsubscribed_at(sessions, john) is not None
    assert _unsubscribed_at(sessions, jane) is None


def test_a_removed_contacts_link_gets_404(
    app: FastAPI, client: TestClient, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    path = _path(app, team, jane)
    with session_scope(sessions) as session:
        service.delete_contact(session, Actor.operator(team.workspace_id), jane)
    assert client.post(path, data=ONE_CLICK).status_code == 404


def test_the_headers_of_a_bulk_email_point_at_a_working_one_click_endpoint(
    app: FastAPI, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        contact = session.get(Contact, jane)
        assert contact is not None
        unsubscribe = unsubscribe_headers_for(
            contact, base_url="https://touchline.test/", box=app.state.secret_box
        )
    built = build_message(
        OutgoingEmail(
            sender=Mailbox("success@team-a.example", "Success Team"),
            to=(Mailbox("jane@globex.example", "Jane"),),
            subject="Our spring webinar",
            text="Join us.",
            date=datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
            unsubscribe=unsubscribe,
        ),
        "team-a.example",
    )
    headers = message_from_bytes(built.raw)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(headers["List-Unsubscribe"]).strip("<>")
    assert url.startswith("https://touchline.test/u/")
    with TestClient(app) as mail_client:
        assert mail_client.post(urlsplit(url).path, data=ONE_CLICK).status_code == 200
    assert _unsubscribed_at(sessions, jane) is not None


def test_an_editor_sees_and_clears_the_unsubscribe(
    app: FastAPI, client: TestClient, team: Team, jane: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    read = client.get(f"/api/v1/contacts/{jane}", headers=team.headers("member"))
    assert read.json()["unsubscribed_at"] is None
    client.post(_path(app, team, jane), data=ONE_CLICK)
    assert client.get(f"/api/v1/contacts/{jane}", headers=team.headers("viewer")).json()["unsubscribed_at"]

    refused = client.delete(f"/api/v1/contacts/{jane}/unsubscribe", headers=team.headers("viewer"))
    assert refused.status_code == 403
    cleared = client.delete(f"/api/v1/contacts/{jane}/unsubscribe", headers=team.headers("member"))
    assert cleared.status_code == 200
    assert cleared.json()["unsubscribed_at"] is None
    assert _unsubscribed_at(sessions, jane) is None
    with session_scope(sessions) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.resubscribe")).one()
        assert entry.actor_user_id == team.member_id


def test_another_workspace_cannot_clear_it(client: TestClient, other_team: Team, jane: uuid.UUID) -> None:
    assert (
        client.delete(f"/api/v1/contacts/{jane}/unsubscribe", headers=other_team.headers("admin")).status_code
        == 404
    )


def test_later_bulk_and_sequence_sends_skip_an_unsubscribed_enduser_a_personal_reply_does_not() -> None:
    when = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    for kind in ("bulk", "sequence"):
        assert carries_unsubscribe_link(kind)
        reason = unsubscribe_skip_reason(kind, when)
        assert reason is not None
        assert "unsubscribed on 2026-12-06 09:30 UTC" in reason
        assert unsubscribe_skip_reason(kind, None) is None
    for kind in ("personal", "reply"):
        assert not carries_unsubscribe_link(kind)
        assert unsubscribe_skip_reason(kind, when) is None
