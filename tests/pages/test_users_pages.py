"""An admin manages users in the browser: invites one (no relay: the link is shown), the invitee sets
a password through it in a browser of their own and lands signed in; the admin changes their role,
deactivates them (their open login ends), reactivates them and resets their password."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from tests.browser import serve
from tests.conftest import Team
from tests.pages.test_companies_pages import log_in
from tests.services import free_port
from touchline.config import Settings

pytestmark = pytest.mark.browser


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def settings(settings: Settings, port: int) -> Settings:
    """Links name the server the browser reaches."""
    return settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})


@pytest.fixture
def live_server(app: FastAPI, port: int) -> Iterator[str]:
    with serve(app, port) as base:
        yield base


def _accept_next_confirm(page: Page, words: str) -> None:
    def answer(dialog: object) -> None:
        assert words in dialog.message  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.once("dialog", answer)


def _set_password_through(page: Page, url: str, password: str, name: str | None = None) -> None:
    page.goto(url)
    if name is not None:
        page.get_by_label("Your name").fill(name)
    page.get_by_label("Password", exact=False).first.fill(password)
    page.get_by_label("The password again").fill(password)
    page.get_by_role("button", name=re.compile("sign in")).click()


def test_an_admin_invites_edits_deactivates_reactivates_and_resets_a_user(
    page: Page, browser: Browser, live_server: str, team: Team
) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/users")
    form = page.locator("#add-user")
    form.get_by_label("Email").fill("nia@team-a.example")
    form.get_by_label("Name").fill("Nia")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Add user").click()
    # The API's message, the field marked, and what was typed kept.
    expect(page.locator("#error")).to_contain_text("a password needs at least 10 characters")
    expect(form.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Email")).to_have_value("nia@team-a.example")
    expect(form.get_by_label("Name")).to_have_value("Nia")

    form.get_by_label("Password").fill("")
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_contain_text("User nia@team-a.example added and invited.")
    link = page.locator("#issued-link-url").input_value()
    assert re.fullmatch(rf"{live_server}/invitations/tlinv_[\w-]+", link)
    expect(page.locator("#users")).to_contain_text("invited, until")

    invitee_context = browser.new_context()
    invitee = invitee_context.new_page()
    invitee.set_default_timeout(10_000)
    try:
        _set_password_through(invitee, link, "nia-password-1", name="Nia Park")
        expect(invitee).to_have_url(f"{live_server}/")
        expect(invitee.get_by_role("status")).to_contain_text("you are signed in")
        expect(invitee.get_by_role("link", name="nia@team-a.example")).to_be_visible()
        # The link worked once.
        invitee.goto(link)
        expect(invitee.locator("#link-unusable")).to_contain_text("already used. Ask a workspace admin")

        page.goto(f"{live_server}/users")
        page.get_by_role("link", name="nia@team-a.example").click()
        expect(page.get_by_role("heading", name="Nia Park")).to_be_visible()
        edit = page.locator("#edit-user")
        edit.get_by_label("Role").select_option(label="Viewer")
        edit.get_by_label("Name").fill("Nia P.")
        edit.get_by_role("button", name="Save user").click()
        expect(page.get_by_role("status")).to_contain_text("User saved.")
        expect(page.locator(".meta")).to_contain_text("Viewer")
        expect(page.get_by_role("heading", name="Nia P.")).to_be_visible()

        _accept_next_confirm(page, "Deactivate nia@team-a.example?")
        page.get_by_role("button", name="Deactivate").click()
        expect(page.get_by_role("status")).to_contain_text("is deactivated")
        expect(page.locator("#user-status")).to_have_text("deactivated")
        invitee.goto(f"{live_server}/companies")
        expect(invitee).to_have_url(f"{live_server}/login?next=/companies")

        page.get_by_role("button", name="Reactivate").click()
        expect(page.get_by_role("status")).to_contain_text("is active again")
        log_in(invitee, live_server, "nia@team-a.example", "nia-password-1")

        _accept_next_confirm(page, "Reset the password of nia@team-a.example?")
        page.get_by_role("button", name="Reset the password").click()
        expect(page.get_by_role("status")).to_contain_text("Password reset link made for nia@team-a.example")
        reset_link = page.locator("#issued-link-url").input_value()
        assert "/password-reset/tlrst_" in reset_link
        # The reset ended the open login at once.
        invitee.goto(f"{live_server}/companies")
        expect(invitee).to_have_url(f"{live_server}/login?next=/companies")
        _set_password_through(invitee, reset_link, "nia-password-2")
        expect(invitee.get_by_role("status")).to_contain_text("Password set: you are signed in.")
        invitee.get_by_role("button", name="Log out").click()
        log_in(invitee, live_server, "nia@team-a.example", "nia-password-2")
    finally:
        invitee_context.close()


def test_an_admin_is_not_offered_deactivating_themself_and_revokes_an_invitation(
    page: Page, live_server: str, team: Team
) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/users/{team.admin_id}")
    expect(page.locator("#user-access")).to_contain_text("This is you")
    expect(page.get_by_role("button", name="Deactivate")).to_have_count(0)
    page.goto(f"{live_server}/users/{team.member_id}")
    page.get_by_role("button", name="Invite to set a password").click()
    expect(page.locator("#issued-link-url")).to_be_visible()
    page.goto(f"{live_server}/users/{team.member_id}")
    expect(page.locator("#invitation-state")).to_contain_text("the link works until")
    _accept_next_confirm(page, "Revoke the invitation of member@team-a.example?")
    page.get_by_role("button", name="Revoke the invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation revoked.")
