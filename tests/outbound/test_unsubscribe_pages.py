"""The unsubscribe link in Chromium: the enduser confirms on a page without script trouble, and an
editor sees the unsubscribe on the contact's page and clears it."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import console_csp_violations
from tests.conftest import Team, csrf_of, sign_in_form
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.models import Contact
from touchline.outbound.unsubscribe.service import unsubscribe_url
from touchline.workspace import service
from touchline.workspace.permissions import Actor


def _jane(sessions: sessionmaker[Session], team: Team) -> uuid.UUID:
    with session_scope(sessions) as session:
        return service.create_contact(session, Actor.operator(team.workspace_id), "jane@globex.example").id


def _unsubscribed(sessions: sessionmaker[Session], contact_id: uuid.UUID) -> bool:
    with session_scope(sessions) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.unsubscribed_at is not None


@pytest.mark.browser
def test_the_enduser_confirms_and_an_editor_clears_it(
    app: FastAPI, page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    jane = _jane(sessions, team)
    csp_errors = console_csp_violations(page)
    page.goto(unsubscribe_url(live_server, app.state.secret_box, team.workspace_id, jane))
    expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
    assert not _unsubscribed(sessions, jane)
    assert page.context.cookies() == []
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert _unsubscribed(sessions, jane)

    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/contacts/{jane}")
    expect(page.locator("#unsubscribed")).to_contain_text("Unsubscribed from bulk and sequence emails")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Clear the unsubscribe").click()
    expect(page.get_by_role("status").first).to_contain_text("receives bulk and sequence emails again")
    expect(page.locator("#unsubscribed")).to_have_count(0)
    assert not _unsubscribed(sessions, jane)
    assert csp_errors == []


def test_clearing_on_the_page_needs_the_form_token(
    app: FastAPI, client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    jane = _jane(sessions, team)
    link = unsubscribe_url("https://touchline.test", app.state.secret_box, team.workspace_id, jane)
    client.post(link.removeprefix("https://touchline.test"), data={"List-Unsubscribe": "One-Click"})
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    contact_page = client.get(f"/contacts/{jane}")
    assert "Clear the unsubscribe" in contact_page.text
    forged = client.post(f"/contacts/{jane}/unsubscribe/clear", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert _unsubscribed(sessions, jane)
    cleared = client.post(
        f"/contacts/{jane}/unsubscribe/clear", data={"csrf_token": csrf_of(contact_page.text)}
    )
    assert cleared.status_code == 200
    assert not _unsubscribed(sessions, jane)
