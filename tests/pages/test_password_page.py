"""A person changes their own password from the link under their name, and sees that it worked."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Team
from tests.pages.test_companies_pages import log_in

pytestmark = pytest.mark.browser


def test_changing_ones_password_in_the_browser(page: Page, live_server: str, team: Team) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.get_by_role("link", name="admin@team-a.example").click()
    page.get_by_label("Current password").fill("admin-password-123")
    page.get_by_label("New password").fill("a-new-password-456")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed")
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server, "admin@team-a.example", "a-new-password-456")
