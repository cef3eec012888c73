"""A person logs in, creates a company, adds domains, and is told why gmail.com is refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Team

pytestmark = pytest.mark.browser


def log_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/companies")
    expect(page).to_have_url(f"{base}/login?next=/companies")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/companies")


def test_login_create_company_add_domain_and_refuse_gmail(page: Page, live_server: str, team: Team) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    form = page.locator("#new-company")
    form.get_by_label("Name").fill("Acme")
    form.get_by_label("Domains").fill("acme.com")
    form.get_by_role("button", name="Create company").click()
    expect(page.get_by_role("heading", name="Acme", exact=True)).to_be_visible()
    expect(page.locator("#domains")).to_contain_text("acme.com")

    add = page.locator("#add-domain")
    add.get_by_label("Add a domain").fill("Acme.CO.uk")
    add.get_by_role("button", name="Add domain").click()
    expect(page.locator("#domains")).to_contain_text("acme.co.uk")

    add.get_by_label("Add a domain").fill("gmail.com")
    add.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("alert")).to_contain_text("gmail.com is a public email provider")
    expect(page.locator("#domains")).not_to_contain_text("gmail.com")

    page.get_by_role("link", name="Companies").click()
    expect(page.locator("table")).to_contain_text("acme.co.uk")


def test_wrong_password_is_refused(page: Page, live_server: str, team: Team) -> None:
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill("admin@team-a.example")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#error")).to_contain_text("do not match")


def test_an_admin_chooses_the_workspace_s_time_zone_and_a_wrong_name_keeps_what_was_typed(
    page: Page, live_server: str, team: Team
) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.get_by_role("link", name="Settings").click()
    zone = page.get_by_label("Time zone")
    expect(zone).to_have_value("UTC")
    zone.fill("Europe/Berlni")
    page.get_by_label("Blocklist").fill("spam.example")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#time_zone-error")).to_contain_text(
        "'Europe/Berlni' is not a time zone; use an IANA name like Europe/Berlin"
    )
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlni")
    expect(page.get_by_label("Blocklist")).to_have_value("spam.example")  # nothing typed is lost
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.get_by_label("Blocklist")).to_have_value("spam.example")


def test_settings_are_for_admins_only(page: Page, live_server: str, team: Team, client: TestClient) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Blocklist").fill("noreply@vendor.example\nspam.example")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    expect(page.get_by_label("Blocklist")).to_have_value("noreply@vendor.example\nspam.example")
    expect(page.locator("#log-address")).to_contain_text("@log.test.example")
