"""The outbox page in Chromium: a member's own emails, an admin's view of everyone's, what `unknown`
means, and editing and cancelling a scheduled email (with the From notice of SPEC §5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import FakeClock, csrf_of, sign_in_form
from tests.outbound.send.conftest import World
from tests.outbound.send.test_composer_pages import (
    MEMBER,
    PASSWORD,
    contact_id,
    give_password,
    log_in_as,
    outbound_rows,
)
from tests.outbound.sending_team import make_sending_team
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.models import OutboundEmail, User
from touchline.outbound.send import service as outbox
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

pytestmark = pytest.mark.browser

ADMIN_EMAIL = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"


def queue_email(
    world: World, user_id: uuid.UUID, subject: str, *, sender: str, send_at: datetime | None = None
) -> uuid.UUID:
    """An email composed through the outbox service, as any page or API call would."""
    with session_scope(world.sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        row = outbox.send_email(
            session,
            workspace_service.actor_for(user),
            outbox.Draft(
                sender=sender,
                to=[outbox.Recipient(world.contact, "Jane")],
                subject=subject,
                html=f"<p>{subject}</p>",
                send_at=send_at,
            ),
            settings=world.settings,
            now=datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
        )
        return row.id


def set_status(world: World, outbound_id: uuid.UUID, status: str, error: str | None = None) -> None:
    with session_scope(world.sessions) as session:
        row = session.get(OutboundEmail, outbound_id)
        assert row is not None
        row.status, row.error = status, error


def test_a_member_sees_their_own_emails_with_what_became_of_them(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    crew = make_sending_team(world.sessions, world.box, world.team)
    later = datetime(2026, 12, 24, 9, 30, tzinfo=UTC)
    scheduled = queue_email(world, world.team.member_id, "Christmas note", sender=MEMBER, send_at=later)
    lost = queue_email(world, world.team.member_id, "Lost one", sender=MEMBER)
    set_status(world, lost, "unknown", "the connection dropped after the message was handed over")
    queue_email(world, crew.bob_id, "Bob's own", sender="bob@team-a.example")

    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.get_by_role("link", name="Outbox").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    table = page.locator("#outbox")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).not_to_contain_text("Bob's own")
    expect(table.locator("th", has_text="Sender")).to_have_count(0)
    expect(page.get_by_label("Whose")).to_have_count(0)  # only admins choose whose emails

    christmas = table.locator("tr", has_text="Christmas note")
    expect(christmas).to_contain_text("scheduled")
    expect(christmas).to_contain_text("2026-12-24 09:30")
    expect(christmas.locator("td").nth(1)).to_have_text(MEMBER)
    expect(christmas).to_contain_text(world.contact)
    expect(christmas.get_by_role("link", name="Edit")).to_have_attribute("href", f"/outbox/{scheduled}/edit")

    unknown = table.locator("tr", has_text="Lost one")
    expect(unknown).to_contain_text(
        "touchline could not tell whether it left; check your Sent folder before sending again"
    )
    expect(unknown).to_contain_text("the connection dropped")
    expect(unknown.get_by_role("button", name="Cancel")).to_have_count(0)

    page.get_by_label("Status").select_option("unknown")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Lost one")


def test_an_admin_sees_everyones_emails_with_their_sender_and_filters_them(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    crew = make_sending_team(world.sessions, world.box, world.team)
    queue_email(world, world.team.member_id, "From the member", sender=MEMBER)
    failed = queue_email(world, crew.bob_id, "From Bob", sender="bob@team-a.example")
    set_status(world, failed, "failed", "550 mailbox unavailable")

    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{live_server}/outbox")
    table = page.locator("#outbox")
    expect(table.locator("tbody tr")).to_have_count(1)  # the admin's own: none yet
    expect(table).to_contain_text("No emails here yet")

    page.get_by_label("Whose").select_option("everyone")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("th", has_text="Sender")).to_have_count(1)
    expect(table.locator("tr", has_text="From Bob").locator("td.sender")).to_have_text("Bob")
    expect(table.locator("tr", has_text="From the member").locator("td.sender")).to_have_text(MEMBER)

    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{live_server}/outbox?who=everyone&status=failed")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("550 mailbox unavailable")


def test_a_member_only_reaches_their_own_emails(
    client: TestClient, world: World, app_clock: FakeClock
) -> None:
    """Another member's scheduled email cannot be opened, edited or cancelled by guessing its id."""
    crew = make_sending_team(world.sessions, world.box, world.team)
    bobs = queue_email(
        world, crew.bob_id, "Bob's", sender="bob@team-a.example", send_at=datetime(2027, 1, 5, tzinfo=UTC)
    )
    give_password(world.sessions, world.team.member_id)
    assert sign_in_form(client, MEMBER, PASSWORD).status_code == 303
    token = csrf_of(client.get("/outbox").text)
    assert client.get(f"/outbox/{bobs}/edit").status_code == 404
    edit = client.post(
        f"/outbox/{bobs}/edit",
        data={"csrf_token": token, "subject": "mine now", "html": "<p>x</p>", "send_at": "2027-01-06T09:00"},
    )
    assert edit.status_code == 404
    assert client.post(f"/outbox/{bobs}/cancel", data={"csrf_token": token}).status_code == 404
    [row] = [row for row in outbound_rows(world) if row.id == bobs]
    assert (row.status, row.subject) == ("scheduled", "Bob's")


def test_a_scheduled_email_is_written_edited_and_cancelled_from_the_pages(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}/compose")
    page.get_by_label("Subject").fill("Renewal call")
    page.get_by_label("Body (HTML)").fill("<p>Shall we talk on Monday?</p>")
    page.get_by_label("Send at (UTC)").fill("2026-12-07T10:00")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    expect(page.get_by_role("status").first).to_contain_text(
        "Scheduled: the email leaves at 2026-12-07 10:00 UTC"
    )
    [row] = outbound_rows(world)
    assert (row.status, row.scheduled_for) == ("scheduled", datetime(2026, 12, 7, 10, 0, tzinfo=UTC))

    page.locator("#outbox tr", has_text="Renewal call").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Send at (UTC)")).to_have_value("2026-12-07T10:00")
    expect(page.locator("#edit-from")).to_have_value(MEMBER)
    expect(page.locator("#from-notice")).to_have_count(0)
    page.get_by_label("Subject").fill("")
    page.get_by_label("Body (HTML)").fill("")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#error")).to_contain_text("the email has no body")
    expect(page.get_by_label("Subject")).to_have_value("")  # kept as typed, not reset
    page.get_by_label("Subject").fill("Renewal call, moved")
    page.get_by_label("Body (HTML)").fill("<p>Tuesday instead?</p>")
    page.get_by_label("Send at (UTC)").fill("2026-12-08T11:15")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    expect(page.get_by_role("status").first).to_contain_text("Saved")
    moved = page.locator("#outbox tr", has_text="Renewal call, moved")
    expect(moved).to_contain_text("2026-12-08 11:15")
    [row] = outbound_rows(world)
    assert (row.subject, row.html_body) == ("Renewal call, moved", "<p>Tuesday instead?</p>")
    assert row.scheduled_for == datetime(2026, 12, 8, 11, 15, tzinfo=UTC)

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    moved.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Cancelled: Renewal call, moved will not be sent."
    )
    assert questions == ["Cancel the email Renewal call, moved? It will not be sent."]
    expect(page.locator("#outbox tr", has_text="Renewal call, moved")).to_contain_text("cancelled")
    expect(page.locator("#outbox").get_by_role("button", name="Cancel")).to_have_count(0)
    [row] = outbound_rows(world)
    assert row.status == "cancelled"


def test_send_times_are_typed_and_shown_on_the_workspace_s_clock(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    with session_scope(world.sessions) as session:
        operator = Actor.operator(world.team.workspace_id)
        berlin = workspace_service.SettingsChange(time_zone="Europe/Berlin")
        workspace_service.update_settings(session, operator, berlin)
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}/compose")
    page.get_by_label("Subject").fill("Renewal call")
    page.get_by_label("Body (HTML)").fill("<p>Shall we talk on Monday?</p>")
    expect(page.locator("#composer-send-at-hint")).to_contain_text("Times are in Europe/Berlin")
    page.get_by_label("Send at (Europe/Berlin)").fill("2026-12-06T09:30")  # 08:30 UTC: passed at 09:00
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#error")).to_contain_text("2026-12-06 09:30 Europe/Berlin has passed")
    page.get_by_label("Send at (Europe/Berlin)").fill("2026-12-07T10:00")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Scheduled: the email leaves at 2026-12-07 10:00 Europe/Berlin"
    )
    [row] = outbound_rows(world)
    assert row.scheduled_for == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # winter time: UTC+1
    expect(page.locator("#outbox")).to_contain_text("2026-12-07 10:00")
    expect(page.get_by_text("Times are in Europe/Berlin.")).to_be_visible()

    page.locator("#outbox tr", has_text="Renewal call").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Send at (Europe/Berlin)")).to_have_value("2026-12-07T10:00")
    page.get_by_label("Subject").fill("Renewal call, same time")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved")
    [row] = outbound_rows(world)
    assert row.subject == "Renewal call, same time"
    assert row.scheduled_for == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # unchanged
    page.goto(f"{live_server}/outbox/{row.id}")
    expect(page.locator("#outbound-email")).to_contain_text("scheduled for 2026-12-07 10:00 Europe/Berlin")


def test_editing_an_email_whose_sender_is_no_longer_a_choice_shows_the_notice(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    crew = make_sending_team(world.sessions, world.box, world.team)
    scheduled = queue_email(
        world,
        world.team.member_id,
        "From the shared address",
        sender="success@team-a.example",
        send_at=datetime(2026, 12, 9, 8, 0, tzinfo=UTC),
    )
    with session_scope(world.sessions) as session:
        success = session.get(User, crew.success_id)
        assert success is not None
        success.public_account_usage = False  # success@ stops being public

    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/outbox/{scheduled}/edit")
    notice = (
        "This email was to be sent from success@team-a.example, which is not one of your From choices "
        "(it is not your address and not public), so it will now be sent from Account Owner."
    )
    expect(page.locator("#from-notice")).to_have_text(notice)
    expect(page.locator("#edit-from option:checked")).to_contain_text("Unchanged (success@team-a.example)")
    assert "Success Team <success@team-a.example>" not in page.locator("#edit-from option").all_inner_texts()
    page.get_by_label("Subject").fill("From the account owner")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    expect(page.locator(".flash.notice")).to_have_text(notice)
    row = page.locator("#outbox tr", has_text="From the account owner")
    expect(row).to_contain_text("Account Owner")
    expect(row).to_contain_text(notice)
    [stored] = outbound_rows(world)
    assert (stored.sender_choice, stored.from_address) == ("account-owner", MEMBER)  # the member owns Acme


def test_an_email_that_has_left_cannot_be_edited(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    sent = queue_email(world, world.team.member_id, "Already gone", sender=MEMBER)
    assert world.deliver(sent) == "sent"
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/outbox/{sent}/edit")
    expect(page).to_have_url(f"{live_server}/outbox")
    expect(page.locator(".flash.error")).to_contain_text(
        "This email is sent; only scheduled emails can be edited."
    )
    expect(
        page.locator("#outbox tr", has_text="Already gone").get_by_role("link", name="Edit")
    ).to_have_count(0)
