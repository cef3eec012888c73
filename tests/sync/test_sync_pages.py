"""In Chromium: connect a Dovecot mailbox, pick folders, see the customer conversation on the company;
an admin applies the default synced labels and watches the job finish."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import FastAPI
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.pages.test_companies_pages import log_in
from tests.services.smtp_sink import SmtpSink
from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, message
from touchline.db import session_scope
from touchline.models import QuarantinedMessage
from touchline.worker import current_queue
from touchline.workspace import service

pytestmark = [pytest.mark.browser, pytest.mark.dovecot]

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def admin(world: SyncWorld) -> str:
    with session_scope(world.sessions) as session:
        service.add_user(
            session, world.operator, f"ada@{INTERNAL}", role="Admin", password="ada-password-123"
        )
    return f"ada@{INTERNAL}"


def test_connect_pick_folders_and_see_the_conversation(
    page: Page, live_server: str, app: FastAPI, world: SyncWorld, admin: str, smtp_sink: SmtpSink
) -> None:
    imap = world.dovecot.add_user()
    smtp_sink.username, smtp_sink.password = imap.username, imap.password
    world.dovecot.create_folder(imap, "Customers")
    world.dovecot.append(
        imap, "Customers", message("Onboarding plan", message_id=f"<plan@{CUSTOMER}>"), received_at=NOW
    )
    world.dovecot.append(
        imap,
        "Customers",
        message(
            "Re: Onboarding plan",
            sender=f"Ada <{admin}>",
            to=f"jane.doe@{CUSTOMER}",
            in_reply_to=f"<plan@{CUSTOMER}>",
        ),
        received_at=NOW,
    )
    log_in(page, live_server, admin, "ada-password-123")
    page.get_by_role("link", name="Email").click()
    form = page.locator("#connect-imap")
    form.get_by_label("IMAP server").fill("127.0.0.1")
    form.get_by_label("Port", exact=True).fill(str(world.dovecot.imap_port))
    form.locator("select[name=security]").select_option("plain")
    form.get_by_label("SMTP server for sending").fill("127.0.0.1")
    form.get_by_label("SMTP port").fill(str(smtp_sink.port))
    form.get_by_label("SMTP security").select_option("plain")
    form.get_by_label("Username").fill(imap.username)
    form.get_by_label("Password").fill(imap.password)
    form.get_by_role("button", name="Connect mailbox").click()
    expect(page.get_by_role("status")).to_contain_text("Mailbox connected")

    folders = page.locator("#folders")
    folders.get_by_label("Customers").check()
    folders.get_by_role("button", name="Update sync settings").click()
    expect(page.get_by_role("status")).to_contain_text("Sync settings updated")

    # The queued syncs run now, one after the other; the minute scheduler stays out of the way.
    current_queue().start_in_process(workers=1, periodic=False)
    try:
        page.goto(f"{live_server}/companies/{world.company_id}")
        timeline = page.locator("#timeline")
        for _ in range(100):  # the in-process worker syncs within moments; reload until both are in
            if "2 emails" in timeline.inner_text():
                break
            page.wait_for_timeout(200)
            page.reload()
        with session_scope(world.sessions) as session:
            quarantined = [row.reason for row in session.scalars(select(QuarantinedMessage))]
        assert quarantined == []
        expect(timeline).to_contain_text("Onboarding plan")
        expect(timeline).to_contain_text("2 emails")
        timeline.get_by_role("link", name="Ada").click()
        expect(page.locator("#explanation")).to_contain_text("jane.doe@customer.example")
    finally:
        current_queue().stop_in_process()


def test_admin_applies_default_labels_and_sees_the_job_finish(
    page: Page, live_server: str, app: FastAPI, world: SyncWorld, admin: str
) -> None:
    user_id, imap = world.add_user("sam")
    world.connect(user_id, imap)
    current_queue().start_in_process(workers=1, periodic=False)
    try:
        log_in(page, live_server, admin, "ada-password-123")
        page.get_by_role("link", name="Settings").click()
        # The boxes as they are on screen are applied (and saved), without saving them first.
        page.get_by_label("Inbox").uncheck()
        page.get_by_label("Sent").check()
        page.get_by_role("button", name="Apply to all users").click()
        expect(page.locator("#task-status")).to_contain_text("Done: 2 of 2 users", timeout=20_000)
        expect(page.locator("#task-result")).to_contain_text("Changed 1")
        page.get_by_role("link", name="Back to settings").click()
        expect(page.get_by_label("Inbox")).not_to_be_checked()
        expect(page.get_by_label("Sent")).to_be_checked()
    finally:
        current_queue().stop_in_process()
