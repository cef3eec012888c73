"""In Chromium: the settings page, desktop notifications allowed with a click, and a notification
arriving as a toast and through the Notification API while the page is open."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.outbound.notify.helpers import deliveries, notice
from tests.pages.test_companies_pages import log_in
from touchline.config import Settings
from touchline.kit.crypto import SecretBox
from touchline.outbound.notify import pages, tasks

pytestmark = pytest.mark.browser

RECORD_DESKTOP_NOTIFICATIONS = """window.__desktop = [];
const Native = window.Notification;
window.Notification = class extends Native {
  constructor(title, options) { window.__desktop.push(title); super(title, options); }
};"""


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.1)


def test_a_notification_shows_as_a_toast_and_a_desktop_notification(
    page: Page,
    live_server: str,
    team: Team,
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    sent_email: uuid.UUID,
    clock: FakeClock,
) -> None:
    page.context.grant_permissions(["notifications"], origin=live_server)
    page.add_init_script(RECORD_DESKTOP_NOTIFICATIONS)
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    page.get_by_role("button", name="Allow desktop notifications").click()
    expect(page.locator("#notifications-permission-state")).to_have_text("Desktop notifications are allowed.")
    # The page's stream is open once it has sent its first event; what is recorded now reaches it.
    expect(page.locator("html")).to_have_attribute("data-notification-stream", "open")
    tasks.record_and_deliver(
        sessions,
        box,
        settings,
        team.workspace_id,
        team.admin_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    toast = page.locator("#notification-toasts .toast")
    expect(toast).to_contain_text("jo@customer.example clicked a link in “Renewal plans”")
    expect(toast).to_contain_text("https://acme.example/pricing")
    page.wait_for_function("() => window.__desktop.length === 1")
    assert page.evaluate("window.__desktop") == ["jo@customer.example clicked a link in “Renewal plans”"]
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)


def test_settings_page_keeps_what_was_typed_on_error_and_sends_a_test(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/profile/notifications")
    expect(page.locator("#email-off")).to_contain_text("TOUCHLINE_RELAY_SMTP_HOST")
    expect(page.get_by_label("reply by email")).to_be_disabled()
    page.get_by_label("bounce by webhook").check()
    page.get_by_label("Webhook URL (signed posts)").fill("https://169.254.169.254/latest")
    page.get_by_label("open by browser").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("link-local address")
    expect(page.get_by_label("Webhook URL (signed posts)")).to_have_value("https://169.254.169.254/latest")
    expect(page.get_by_label("bounce by webhook")).to_be_checked()
    expect(page.get_by_label("open by browser")).not_to_be_checked()
    page.get_by_label("Webhook URL (signed posts)").fill("")
    page.get_by_label("bounce by webhook").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("Notification settings saved")
    expect(page.get_by_label("open by browser")).not_to_be_checked()
    page.get_by_role("button", name="Generate a new secret").click()
    secret = page.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    page.goto(f"{live_server}/profile/notifications")
    expect(page.locator("#webhook-secret")).to_have_count(0)  # shown once
    page.get_by_role("button", name="Send a test notification").click()
    expect(page.get_by_role("status").first).to_contain_text("A test notification was sent.")
    # The page after the button shows the test notification, though it was stored before the page loaded.
    expect(page.locator("#notification-toasts .toast")).to_contain_text("touchline: test notification")
    expect(page.locator("#deliveries")).to_contain_text("test")
    assert [(row.channel, row.kind, row.status) for row in deliveries(sessions)] == [
        ("browser", "test", "sent")
    ]


def test_a_toast_waits_while_the_page_is_hidden_or_pointed_at(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    page.clock.install()
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/profile/notifications")
    page.get_by_role("button", name="Send a test notification").click()
    toast = page.locator("#notification-toasts .toast")
    expect(toast).to_contain_text("touchline: test notification")
    # From here the page's time moves only when the test moves it (the toast had well under 2 s of it).
    page.clock.pause_at((page.evaluate("Date.now()") + 1_000) / 1_000)  # seconds since the epoch

    def set_visibility(state: str) -> None:
        page.evaluate(
            """state => {
              Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
              document.dispatchEvent(new Event("visibilitychange"));
            }""",
            state,
        )

    set_visibility("hidden")  # another tab is in front
    page.clock.run_for(60_000)
    expect(toast).to_have_count(1)
    set_visibility("visible")
    page.clock.run_for(10_000)
    expect(toast).to_have_count(1)
    toast.locator("strong").hover()  # the pointer rests on it: its time stops
    page.clock.run_for(30_000)
    expect(toast).to_have_count(1)
    page.mouse.move(0, 0)
    page.clock.run_for(1_000)
    expect(toast).to_have_count(1)  # about 13 of its 15 seconds in view so far
    page.clock.run_for(3_000)
    expect(toast).to_have_count(0)
