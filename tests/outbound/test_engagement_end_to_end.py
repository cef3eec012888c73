"""End to end in Chromium: a tracked email leaves through the relay to the local SMTP sink; its HTML,
opened in a recipient's browser, loads the pixel from the live server and a click on its link goes
through the click redirect to the recorded URL; the sender then sees the open and the click, made by a
person, on the email's page and in the outbox, and a browser notification of the click.

The live server takes the tracking hits itself (the tracking app mounted at /t); the queue runs each job
when it is sent, in the process that sends it, as the worker would run it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import serve
from tests.conftest import Team
from tests.pages.test_companies_pages import log_in
from tests.services import free_port
from tests.services.smtp_sink import SmtpSink, open_relay
from touchline.app import create_app
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import (
    Contact,
    EmailEngagement,
    EngagementEvent,
    NotificationDelivery,
    OutboundEmail,
    PendingJob,
    TrackedLink,
    User,
)
from touchline.outbound.notify import pages as notify_pages
from touchline.outbound.send import service as outbox
from touchline.outbound.templates import service as templates
from touchline.worker import configure_queue
from touchline.workspace import service as workspace

__all__ = ["open_relay"]

pytestmark = pytest.mark.browser

ADMIN = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"
CUSTOMER = "jane@acme.example"
# A desktop browser's own user agent: headless Chromium names itself, which marks its hits as a machine's.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
RECORD_DESKTOP_NOTIFICATIONS = """window.__desktop = [];
const Native = window.Notification;
window.Notification = class extends Native {
  constructor(title, options) { window.__desktop.push(title); super(title, options); }
};"""


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def served_settings(settings: Settings, open_relay: SmtpSink, port: int) -> Settings:
    """The live server's settings: it is its own tracking host, and it sends through the relay sink."""
    return settings.model_copy(
        update={
            "base_url": f"http://127.0.0.1:{port}",
            "relay_smtp_host": "127.0.0.1",
            "relay_smtp_port": open_relay.port,
            "relay_smtp_security": "plain",
        }
    )


@pytest.fixture
def app(served_settings: Settings, sessions: sessionmaker[Session]) -> Iterator[FastAPI]:
    queue = configure_queue(served_settings, immediate=True)
    application = create_app(served_settings, queue=queue)
    yield application
    queue.close()


@pytest.fixture
def live_server(app: FastAPI, port: int) -> Iterator[str]:
    with serve(app, port) as base:
        yield base


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_pages, "POLL_SECONDS", 0.1)


def send_tracked(sessions: sessionmaker[Session], team: Team, settings: Settings, landing: str) -> uuid.UUID:
    """The admin sends a tracked email from a template to the customer; the delivery job runs when
    the send commits. Its sent time is then set ten minutes back, so that the browser's hits come
    long after it left and count as a person's (hits within 2 s of sending are a scanner's)."""
    html = f'<p>Hello {{{{ enduser.first_name }}}},</p><p>Your <a href="{landing}">renewal plan</a>.</p>'
    with session_scope(sessions) as session:
        session.add(Contact(workspace_id=team.workspace_id, email=CUSTOMER, name="Jane Doe"))
        admin = session.get(User, team.admin_id)
        assert admin is not None
        actor = workspace.actor_for(admin)
        templates.create_template(
            session, actor, "renewal", templates.TemplateText("Renewal plans", html, None, True, True)
        )
        draft = outbox.Draft(sender=ADMIN, to=[outbox.Recipient(CUSTOMER)], template="renewal")
        outbound_id = outbox.send_email(session, actor, draft, settings=settings, now=datetime.now(UTC)).id
    with session_scope(sessions) as session:
        row = session.get(OutboundEmail, outbound_id)
        assert row is not None
        assert row.status == outbox.SENT
        assert row.sent_at is not None
        row.sent_at -= timedelta(minutes=10)
        record = session.scalars(
            select(EmailEngagement).where(EmailEngagement.outbound_email_id == outbound_id)
        ).one()
        record.sent_at = row.sent_at
    return outbound_id


def what_was_stored(sessions: sessionmaker[Session]) -> str:
    """The notifications, engagement records and jobs left in the outbox: what a failure needs to say
    where the chain from a click to the sender's page stopped."""
    with session_scope(sessions) as session:
        notifications = session.execute(
            select(NotificationDelivery.id, NotificationDelivery.channel, NotificationDelivery.kind)
        ).all()
        records = session.execute(
            select(
                EmailEngagement.human_open_rate, EmailEngagement.human_click_rate, EmailEngagement.updated_at
            )
        ).all()
        pending = session.execute(select(PendingJob.name, PendingJob.kwargs, PendingJob.claimed_until)).all()
    return f"notifications {notifications}; engagement records {records}; jobs left in the outbox {pending}"


def test_a_tracked_email_opened_and_clicked_in_a_browser_shows_on_the_sender_s_page(
    page: Page,
    browser: Browser,
    live_server: str,
    team: Team,
    sessions: sessionmaker[Session],
    served_settings: Settings,
    open_relay: SmtpSink,
) -> None:
    # The sender is on the outbox with desktop notifications allowed and the notification stream open.
    page.context.grant_permissions(["notifications"], origin=live_server)
    page.add_init_script(RECORD_DESKTOP_NOTIFICATIONS)
    log_in(page, live_server, ADMIN, ADMIN_PASSWORD)
    landing = f"{live_server}/login?next=/companies"
    outbound_id = send_tracked(sessions, team, served_settings, landing)
    page.goto(f"{live_server}/outbox")
    expect(page.locator("html")).to_have_attribute("data-notification-stream", "open")

    # The recipient opens the HTML part the sink received, in a browser of their own.
    received = open_relay.received[-1]
    assert received.message.get_all("To") == [CUSTOMER]
    html = received.part("text/html")
    assert f"{live_server}/t/" in html
    assert landing not in html  # the link goes through the click redirect
    reader = browser.new_context(user_agent=DESKTOP_CHROME)
    try:
        inbox = reader.new_page()
        inbox.set_default_timeout(10_000)
        with inbox.expect_response(lambda response: "/t/o/" in response.url) as pixel:
            inbox.set_content(html)  # resolves once the page, pixel included, has loaded
        assert pixel.value.status == 200
        inbox.get_by_role("link", name="renewal plan").click()
        expect(inbox).to_have_url(landing)
    finally:
        reader.close()

    with session_scope(sessions) as session:
        recorded = session.scalars(
            select(TrackedLink.url).where(
                TrackedLink.outbound_email_id == outbound_id, TrackedLink.kind == "click"
            )
        ).all()
        events = session.execute(
            select(EngagementEvent.kind, EngagementEvent.machine_reason)
            .where(EngagementEvent.outbound_email_id == outbound_id)
            .order_by(EngagementEvent.occurred_at)
        ).all()
    assert recorded == [landing]
    assert [tuple(event) for event in events] == [("open", None), ("click", None)]

    # The click reaches the sender's open page as a desktop notification and a toast. The refresh that
    # finds it runs after the click is stored and the page polls for it: on a loaded machine this can
    # take longer than a locator's few seconds, and a toast leaves after 15 s, so the lasting record of
    # desktop notifications is awaited first.
    try:
        page.wait_for_function(
            "() => window.__desktop.some(title => title.includes('clicked a link'))", timeout=30_000
        )
    except PlaywrightTimeoutError as error:
        raise AssertionError(
            f"no click notification reached the page: {what_was_stored(sessions)}"
        ) from error
    toast = page.locator("#notification-toasts .toast").filter(has_text="clicked a link")
    expect(toast).to_contain_text(f"{CUSTOMER} clicked a link in “Renewal plans”")
    expect(toast).to_contain_text(landing)

    # The email's page and the outbox show the open and the click, a person's, and the link followed.
    page.goto(f"{live_server}/outbox/{outbound_id}")
    badges = page.locator("#engagement .engagement")
    expect(badges.locator(".badge.opened")).to_have_text("opened")
    expect(badges.locator(".badge.clicked")).to_have_text("clicked")
    expect(badges.locator(".badge.machine")).to_have_count(0)
    rows = page.locator("#engagement table.events tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("open")
    expect(rows.nth(0)).to_contain_text("person")
    expect(rows.nth(1)).to_contain_text("click")
    expect(rows.nth(1).get_by_role("link", name=landing)).to_have_attribute("href", landing)
    page.goto(f"{live_server}/outbox")
    row = page.locator("#outbox tbody tr").filter(has_text="Renewal plans")
    expect(row.locator(".badge.opened")).to_be_visible()
    expect(row.locator(".badge.clicked")).to_be_visible()
