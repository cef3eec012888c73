"""The Profile > Email tab's public account switch (SPEC §5), in Chromium and through the form."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import console_csp_violations
from tests.conftest import Team, csrf_of, sign_in_form
from tests.outbound.sending_team import SendingTeam, connect, make_sending_team
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import User
from touchline.workspace import service
from touchline.workspace.permissions import Actor

CAROL = "carol@team-a.example"
PASSWORD = "carol-password-123"


def _add_carol(sessions: sessionmaker[Session], team: Team, role: str = "Member") -> uuid.UUID:
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        if role not in {"Admin", "Member", "Viewer"}:
            service.create_role(session, operator, role, ["view_customers", "email_sync"])
        return service.add_user(session, operator, CAROL, name="Carol", role=role, password=PASSWORD).id


def _is_public(sessions: sessionmaker[Session], user_id: uuid.UUID) -> bool:
    with session_scope(sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.public_account_usage


@pytest.mark.browser
def test_a_member_connects_a_mailbox_then_makes_the_address_public(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    carol = _add_carol(sessions, team)
    csp_errors = console_csp_violations(page)
    log_in(page, live_server, CAROL, PASSWORD)
    page.get_by_role("link", name="Email", exact=True).click()
    section = page.locator("#public-account")
    expect(section.get_by_role("heading", name="Public account usage")).to_be_visible()
    expect(section.locator("#public-account-status")).to_contain_text("No:")
    switch = section.get_by_role("button", name="Make my address public")
    expect(switch).to_be_disabled()
    expect(section.locator("#public-account-why-not")).to_contain_text("Connect your mailbox first")

    with session_scope(sessions) as session:
        connect(session, box, team.workspace_id, carol, CAROL)
    page.reload()
    expect(switch).to_be_enabled()
    expect(section.locator("#public-account-why-not")).to_have_count(0)
    switch.click()
    expect(page.get_by_role("status").first).to_contain_text(f"Colleagues can now send from {CAROL}")
    expect(section.locator("#public-account-status")).to_contain_text(
        f"Yes: colleagues can send from {CAROL}"
    )
    assert _is_public(sessions, carol)

    section.get_by_role("button", name="Make my address private").click()
    expect(section.locator("#public-account-status")).to_contain_text("No:")
    assert not _is_public(sessions, carol)
    assert csp_errors == []


@pytest.mark.browser
def test_the_switch_explains_a_missing_permission(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    carol = _add_carol(sessions, team, role="Mailbox only")
    with session_scope(sessions) as session:
        connect(session, box, team.workspace_id, carol, CAROL)
    log_in(page, live_server, CAROL, PASSWORD)
    page.goto(f"{live_server}/profile/email")
    section = page.locator("#public-account")
    expect(section.get_by_role("button", name="Make my address public")).to_be_disabled()
    expect(section.locator("#public-account-why-not")).to_contain_text('"Email on my behalf" permission')


@pytest.mark.browser
def test_disconnecting_on_the_page_makes_the_address_private(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    carol = _add_carol(sessions, team)
    with session_scope(sessions) as session:
        connect(session, box, team.workspace_id, carol, CAROL)
        user = session.get(User, carol)
        assert user is not None
        user.public_account_usage = True
    log_in(page, live_server, CAROL, PASSWORD)
    page.goto(f"{live_server}/profile/email")
    expect(page.locator("#public-account-status")).to_contain_text("Yes:")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disconnect").click()
    expect(page.locator("#public-account-status")).to_contain_text("No:")
    expect(page.locator("#public-account-why-not")).to_contain_text("Connect your mailbox first")
    assert not _is_public(sessions, carol)


def test_the_form_needs_its_token_and_acts_only_on_the_signed_in_user(
    client: TestClient, team: Team, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    crew: SendingTeam = make_sending_team(sessions, box, team)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    tab = client.get("/profile/email")
    assert tab.status_code == 200
    assert "Public account usage" in tab.text

    forged = client.post("/profile/email/public-account", data={"csrf_token": "forged", "public": "no"})
    assert forged.status_code == 403

    # Whatever the form carries, it switches the signed-in admin's own address, never success@'s.
    response = client.post(
        "/profile/email/public-account",
        data={"csrf_token": csrf_of(tab.text), "public": "no", "user_id": str(crew.success_id)},
    )
    assert response.status_code == 200
    assert _is_public(sessions, crew.success_id)
    on = client.post("/profile/email/public-account", data={"csrf_token": csrf_of(tab.text), "public": "yes"})
    assert "Connect your mailbox first" in on.text
    assert not _is_public(sessions, team.admin_id)
