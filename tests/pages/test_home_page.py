"""The home page: my customers' conversations, what needs attention, mailbox health, my sends."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Team, csrf_of, sign_in_form
from touchline.db import session_scope
from touchline.inbound.match import match
from touchline.inbound.parse import parse_message
from touchline.inbound.store.directory import load_directory
from touchline.inbound.store.service import Holding, store_email
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import Folder, SpecialUse
from touchline.models import Email, OutboundEmail
from touchline.models.engagement import EmailEngagement
from touchline.models.outbound import OutboundRecipient
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

MEMBER_PASSWORD = "member-password-1"
VIEWER_PASSWORD = "viewer-password-1"


def _outbound(team: Team, who: uuid.UUID, status: str, subject: str, **extra: object) -> OutboundEmail:
    return OutboundEmail(
        workspace_id=team.workspace_id,
        created_by=who,
        sender_choice="member@team-a.example",
        from_address="member@team-a.example",
        via="relay",
        subject=subject,
        idempotency_key=uuid.uuid4().hex,
        message_id=f"<{uuid.uuid4().hex}@team-a.example>",
        status=status,
        recipients=[
            OutboundRecipient(
                workspace_id=team.workspace_id,
                position=0,
                kind="to",
                address="jane@acme.example",
                name="Jane Roe",
            )
        ],
        **extra,
    )


def _seed(app: FastAPI, team: Team, other_team: Team) -> dict[str, uuid.UUID]:
    """The member owns Acme and has its mail, a mailbox to reconnect, a failed, a scheduled and an
    engaged send; the admin and another workspace have sends and mail the member must not count."""
    now = dt.datetime.now(dt.UTC)
    ids: dict[str, uuid.UUID] = {}
    with session_scope(app.state.sessions) as session:
        for one in (team, other_team):
            operator = Actor.operator(one.workspace_id)
            workspace_service.create_company(
                session, operator, "Acme", domains=["acme.example"], account_owner=one.member_id
            )
            session.add_all(
                [
                    Email(
                        workspace_id=one.workspace_id,
                        dedup_key=uuid.uuid4().hex,
                        subject="Who is this?",
                        source="log",
                        unassigned=True,
                    ),
                    _outbound(one, one.admin_id, "failed", "Admin's failure"),
                ]
            )
        operator = Actor.operator(team.workspace_id)
        mailbox = mailboxes.connect_mailbox(
            session,
            operator,
            app.state.secret_box,
            user_id=team.member_id,
            provider="imap",
            address="member@team-a.example",
            connection={"host": "127.0.0.1", "port": 143, "security": "plain", "username": "member"},
            credentials={"password": "x"},
            folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX)],
        )
        mailbox.status = mailboxes.STATUS_NEEDS_RECONNECT
        mailbox.last_error = "the server refused the password"
        raw = (
            b"From: Jane Roe <jane@acme.example>\r\nTo: member@team-a.example\r\n"
            b"Subject: Renewal next month\r\n"
            b"Message-ID: <renewal@acme.example>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\n"
            b"Can we talk about seats?\r\n"
        )
        parsed = parse_message(raw)
        stored = store_email(
            session,
            team.workspace_id,
            parsed,
            match(parsed, load_directory(session, team.workspace_id)),
            Holding(user_id=team.member_id, via="sync", folder_id=mailbox.folders[0].id, folder_name="INBOX"),
        )
        ids["email"] = stored.email_id
        failed = _outbound(team, team.member_id, "failed", "Member's failure")
        scheduled = _outbound(
            team, team.member_id, "scheduled", "Quarterly review", scheduled_for=now + dt.timedelta(days=2)
        )
        sent = _outbound(team, team.member_id, "sent", "Onboarding", sent_at=now - dt.timedelta(days=1))
        session.add_all([failed, scheduled, sent])
        session.flush()
        session.add(
            EmailEngagement(
                workspace_id=team.workspace_id,
                outbound_email_id=sent.id,
                created_by=team.member_id,
                sender_user_id=team.member_id,
                recipient_address="jane@acme.example",
                track_opens=True,
                track_clicks=True,
                sent_at=now - dt.timedelta(days=1),
                opens=3,
                human_opens=2,
                clicks=1,
                human_clicks=1,
                replies=1,
                last_event_at=now - dt.timedelta(hours=1),
            )
        )
        ids.update(failed=failed.id, scheduled=scheduled.id, sent=sent.id)
    return ids


def _set_password(client: TestClient, team: Team, user_id: uuid.UUID, password: str) -> None:
    response = client.patch(f"/api/v1/users/{user_id}", json={"password": password}, headers=team.headers())
    assert response.status_code == 200, response.text


def _attention(html: str, label: str) -> str:
    """The count beside an attention item, read from the page's HTML."""
    start = html.index(label)
    count_at = html.index('class="count">', start) + len('class="count">')
    return html[count_at : html.index("<", count_at)]


@pytest.mark.browser
def test_a_member_starts_the_day_on_the_home_page(
    page: Page, live_server: str, app: FastAPI, client: TestClient, team: Team, other_team: Team
) -> None:
    ids = _seed(app, team, other_team)
    _set_password(client, team, team.member_id, MEMBER_PASSWORD)
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill("member@team-a.example")
    page.get_by_label("Password").fill(MEMBER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/")
    expect(page.get_by_role("heading", name="Your day")).to_be_visible()

    conversations = page.locator("#conversations")
    expect(conversations.get_by_role("link", name="Renewal next month")).to_have_attribute(
        "href", f"/emails/{ids['email']}"
    )
    expect(conversations).to_contain_text("Can we talk about seats?")
    expect(conversations.get_by_title("jane@acme.example")).to_have_text("Jane Roe")

    attention = page.locator("#attention")
    expect(attention.locator("li", has_text="Unassigned emails").locator(".count")).to_have_text("1")
    expect(attention.locator("li", has_text="Failed sends").locator(".count")).to_have_text("1")
    reconnect = attention.locator("li", has_text="My mailbox")
    expect(reconnect.locator(".count")).to_have_text("1")
    expect(attention).not_to_contain_text("refused")

    expect(page.locator("#mailboxes")).to_contain_text("needs reconnecting")
    expect(page.locator("#mailboxes")).to_contain_text("the server refused the password")
    expect(page.locator("#scheduled").get_by_role("link", name="Quarterly review")).to_have_attribute(
        "href", f"/outbox/{ids['scheduled']}"
    )
    expect(page.locator("#scheduled").get_by_title("jane@acme.example")).to_have_text("Jane Roe")
    engaged = page.locator("#engagement tbody tr")
    expect(engaged).to_have_count(1)
    expect(engaged).to_contain_text("jane@acme.example")

    attention.get_by_role("link", name="Failed sends").click()
    expect(page).to_have_url(f"{live_server}/outbox?who=mine&status=failed")
    expect(page.locator("body")).to_contain_text("Member's failure")
    page.get_by_role("link", name="touchline").click()
    expect(page).to_have_url(f"{live_server}/")


def test_the_admin_home_shows_the_team(
    client: TestClient, app: FastAPI, team: Team, other_team: Team
) -> None:
    _seed(app, team, other_team)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123", "/").status_code == 303
    html = client.get("/").text
    assert "Your team today" in html
    # Both failures of this workspace, none of the other's.
    assert _attention(html, "Failed sends") == "2"
    assert _attention(html, "Mailboxes to reconnect or failing") == "1"
    assert _attention(html, "Mail the log address refused") == "0"
    assert "member@team-a.example" in html
    assert "needs reconnecting" in html
    # The admin owns no company: the member's customer mail is not "my companies" for them.
    assert "Renewal next month" not in html


@pytest.mark.parametrize(
    ("failing", "state", "summary"),
    [
        (["INBOX"], "some folders failing", "1 of 2 synced folders failing"),
        (["INBOX", "Sent"], "every folder failing", "every synced folder is failing"),
    ],
)
def test_the_admin_sees_which_team_mailboxes_fail_in_some_or_every_folder(
    client: TestClient, app: FastAPI, team: Team, failing: list[str], state: str, summary: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(app.state.sessions) as session:
        mailbox = mailboxes.connect_mailbox(
            session,
            Actor.operator(team.workspace_id),
            app.state.secret_box,
            user_id=team.member_id,
            provider="imap",
            address="member@team-a.example",
            connection={"host": "127.0.0.1", "port": 143, "security": "plain", "username": "member"},
            credentials={"password": "x"},
            folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX), Folder("Sent", "Sent", SpecialUse.SENT)],
        )
        assert sorted(folder.name for folder in mailbox.folders if folder.selected) == ["INBOX", "Sent"]
        for folder in mailbox.folders:
            if folder.name in failing:
                folder.last_error = "the server says the folder does not exist"
                folder.last_error_at = now
                folder.next_retry_at = now + dt.timedelta(minutes=5)
            else:
                folder.last_synced_at = now
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123", "/").status_code == 303

    html = client.get("/").text

    row = html[html.index("member@team-a.example", html.index('id="mailboxes"')) :]
    row = row[: row.index("</tr>")]
    assert f">{state}</span>" in row
    assert summary in row
    other = {"some folders failing", "every folder failing"} - {state}
    assert not any(label in row for label in other)
    assert _attention(html, "Mailboxes to reconnect or failing") == "1"


def test_a_viewer_sees_only_what_a_viewer_may(
    client: TestClient, app: FastAPI, team: Team, other_team: Team
) -> None:
    _seed(app, team, other_team)
    _set_password(client, team, team.viewer_id, VIEWER_PASSWORD)
    assert sign_in_form(client, "viewer@team-a.example", VIEWER_PASSWORD, "/").status_code == 303
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert _attention(html, "Unassigned emails") == "1"
    hidden_from_viewers = ("Failed sends", "Quarterly review", "member@team-a.example", "log address refused")
    for hidden in hidden_from_viewers:
        assert hidden not in html


def test_the_home_page_needs_a_login(client: TestClient, team: Team) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/"
    sign_in_form(client, "admin@team-a.example", "admin-password-123")
    assert csrf_of(client.get("/").text)
