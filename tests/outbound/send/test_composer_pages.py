"""The composer on the company, contact and email pages, in Chromium: the From choices of SPEC §5,
permissions, errors that keep what was typed, template previews, and a send that reaches SMTP."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, csrf_of, sign_in_form
from tests.outbound.send.conftest import World
from tests.outbound.sending_team import make_sending_team, store_conversation
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.kit.crypto import hash_password
from touchline.models import Contact, Email, OutboundEmail, User
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service

pytestmark = pytest.mark.browser

MEMBER = "member@team-a.example"
VIEWER = "viewer@team-a.example"
PASSWORD = "page-password-123"
SUCCESS = "Success Team <success@team-a.example>"


def give_password(sessions: sessionmaker[Session], user_id: uuid.UUID) -> None:
    with session_scope(sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        user.password_hash = hash_password(PASSWORD)


def log_in_as(page: Page, live_server: str, sessions: sessionmaker[Session], user_id: uuid.UUID) -> None:
    give_password(sessions, user_id)
    with session_scope(sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        email = user.email
    log_in(page, live_server, email, PASSWORD)


def add_contact(world: World, email: str, company_id: uuid.UUID | None = None) -> uuid.UUID:
    with session_scope(world.sessions) as session:
        contact = Contact(
            workspace_id=world.team.workspace_id, email=email, name="Solo", company_id=company_id
        )
        session.add(contact)
        session.flush()
        return contact.id


def contact_id(world: World, email: str) -> uuid.UUID:
    with session_scope(world.sessions) as session:
        found = session.scalar(select(Contact.id).where(Contact.email == email))
        assert found is not None
        return found


def from_options(page: Page) -> list[str]:
    return page.locator("#composer-from option").all_inner_texts()


def outbound_rows(world: World) -> list[OutboundEmail]:
    with session_scope(world.sessions) as session:
        rows = list(session.scalars(select(OutboundEmail).order_by(OutboundEmail.created_at)))
        session.expunge_all()
        return rows


def test_only_the_own_mailbox_is_offered_to_a_contact_without_a_company(
    page: Page, live_server: str, world: World
) -> None:
    solo = add_contact(world, "solo@elsewhere.example")
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{solo}")
    page.get_by_role("link", name="Write an email").click()
    expect(page).to_have_url(f"{live_server}/contacts/{solo}/compose")
    assert from_options(page) == [MEMBER]
    expect(page.get_by_label("To", exact=True)).to_have_value("solo@elsewhere.example")
    expect(page.get_by_label("Send at (UTC)")).to_be_visible()
    expect(page.locator("#composer-send-at-hint")).to_contain_text(
        "Times are in UTC, the workspace's time zone"
    )


def test_a_colleagues_public_address_is_offered_and_a_private_one_is_not(
    page: Page, live_server: str, world: World
) -> None:
    make_sending_team(world.sessions, world.box, world.team)
    solo = add_contact(world, "solo@elsewhere.example")
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{solo}/compose")
    assert from_options(page) == [MEMBER, SUCCESS]


def test_account_owner_is_offered_on_the_company_page(page: Page, live_server: str, world: World) -> None:
    make_sending_team(world.sessions, world.box, world.team)
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/companies/{world.company_id}")
    page.get_by_role("link", name="Write an email").click()
    assert from_options(page) == ["Account Owner", MEMBER, SUCCESS]
    expect(page.locator("#composer-from")).to_have_value(MEMBER)  # one's own address until changed
    expect(page.get_by_label("Jane")).not_to_be_checked()  # the company's contacts, to choose among


def test_a_reply_offers_a_public_address_only_when_it_is_in_the_conversation(
    page: Page, live_server: str, world: World
) -> None:
    make_sending_team(world.sessions, world.box, world.team)
    inside = store_conversation(
        world.sessions, world.team.workspace_id, "inside", [MEMBER, "success@team-a.example"]
    )
    outside = store_conversation(world.sessions, world.team.workspace_id, "outside", [MEMBER])
    log_in_as(page, live_server, world.sessions, world.team.member_id)

    page.goto(f"{live_server}/emails/{inside}")
    page.get_by_role("link", name="Reply").click()
    expect(page).to_have_url(f"{live_server}/emails/{inside}/reply")
    assert from_options(page) == [MEMBER, SUCCESS]
    expect(page.locator("#from-refused")).to_have_count(0)
    expect(page.get_by_label("To", exact=True)).to_have_value("ceo@globex.example")
    expect(page.get_by_label("Subject")).to_have_value("Re: Renewal inside")

    page.goto(f"{live_server}/emails/{outside}/reply")
    assert from_options(page) == [MEMBER]
    expect(page.locator("#from-refused")).to_contain_text(
        "success@team-a.example is not part of this conversation, so you cannot reply from it. "
        "Forward the email to success@team-a.example first, then reply from there."
    )

    # Chosen by hand anyway (the option added to the page), the server refuses it the same way.
    page.locator("#composer-from").evaluate(
        "(select) => { select.add(new Option('success', 'success@team-a.example')); "
        "select.value = 'success@team-a.example'; }"
    )
    page.get_by_label("Body (HTML)").fill("<p>Answer</p>")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#error")).to_contain_text("Forward the email to success@team-a.example first")
    assert outbound_rows(world) == []


def test_another_users_private_address_posted_by_hand_is_refused_and_what_was_typed_is_kept(
    page: Page, live_server: str, world: World
) -> None:
    make_sending_team(world.sessions, world.box, world.team)
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}/compose")
    assert "Bob <bob@team-a.example>" not in from_options(page)
    page.locator("#composer-from").evaluate(
        "(select) => { select.add(new Option('Bob', 'bob@team-a.example')); "
        "select.value = 'bob@team-a.example'; }"
    )
    page.get_by_label("Cc").fill("boss@acme.example")
    page.get_by_label("Subject").fill("Your renewal")
    page.get_by_label("Body (HTML)").fill("<p>Typed with care</p>")
    page.get_by_label("Send at (UTC)").fill("2031-01-02T09:30")
    response_status: list[int] = []
    page.on("response", lambda response: response_status.append(response.status))
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#error")).to_contain_text(
        "bob@team-a.example is another user's private address: you can only send from public addresses."
    )
    assert 400 in response_status
    expect(page.get_by_label("To", exact=True)).to_have_value(world.contact)
    expect(page.get_by_label("Cc")).to_have_value("boss@acme.example")
    expect(page.get_by_label("Subject")).to_have_value("Your renewal")
    expect(page.get_by_label("Body (HTML)")).to_have_value("<p>Typed with care</p>")
    expect(page.get_by_label("Send at (UTC)")).to_have_value("2031-01-02T09:30")
    assert outbound_rows(world) == []


def test_a_send_time_that_has_passed_is_refused_with_what_to_do(
    page: Page, live_server: str, world: World, app_clock: FakeClock
) -> None:
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}/compose")
    page.get_by_label("Subject").fill("Late")
    page.get_by_label("Body (HTML)").fill("<p>Late</p>")
    page.get_by_label("Send at (UTC)").fill("2026-12-06T08:00")  # the app's clock says 09:00
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#error")).to_contain_text(
        "2026-12-06 08:00 UTC has passed; choose a later time, or leave it empty to send now"
    )
    expect(page.get_by_label("Subject")).to_have_value("Late")
    assert outbound_rows(world) == []


def test_an_email_written_on_the_contact_page_reaches_the_smtp_server(
    page: Page, live_server: str, world: World
) -> None:
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}")
    page.get_by_role("link", name="Write an email").click()
    page.get_by_label("To", exact=True).fill(f"Jane Doe <{world.contact}>, ")  # a stray comma is fine
    page.get_by_label("Subject").fill("Your renewal")
    page.get_by_label("Body (HTML)").fill("<p>Hello <b>Jane</b></p>")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    expect(page.get_by_role("status").first).to_contain_text("Queued")
    [row] = outbound_rows(world)
    assert (row.status, row.from_address, row.subject) == ("queued", MEMBER, "Your renewal")

    assert world.deliver(row.id) == "sent"
    [received] = world.sink.received
    assert received.mail_from == MEMBER
    assert received.recipients == (world.contact,)
    assert received.message["Subject"] == "Your renewal"
    assert received.message["To"] == "Jane Doe <jane@acme.example>"
    assert "<b>Jane</b>" in received.part("text/html")
    page.reload()
    expect(page.locator("#outbox tbody tr").first).to_contain_text("sent")


def test_the_company_page_sends_as_the_account_owner_to_a_chosen_contact(
    page: Page, live_server: str, world: World
) -> None:
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/companies/{world.company_id}/compose")
    page.locator("#composer-from").select_option("account-owner")
    page.get_by_label("Subject").fill("Quarterly review")
    page.get_by_label("Body (HTML)").fill("<p>Shall we meet?</p>")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#error")).to_contain_text("an email needs at least one To recipient")
    expect(page.locator("#composer-from")).to_have_value("account-owner")
    page.get_by_label("Jane").check()
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    [row] = outbound_rows(world)
    assert (row.sender_choice, row.from_address) == ("account-owner", MEMBER)
    assert world.deliver(row.id) == "sent"
    assert world.sink.received[0].recipients == (world.contact,)


def _template(world: World, name: str, html: str) -> uuid.UUID:
    with session_scope(world.sessions) as session:
        user = session.get(User, world.team.member_id)
        assert user is not None
        return templates.create_template(
            session,
            workspace_service.actor_for(user),
            name,
            templates.TemplateText("{{ company.name }} renewal", html),
        ).id


def test_a_template_preview_names_the_missing_field_and_a_complete_one_is_sent(
    page: Page, live_server: str, world: World
) -> None:
    _template(world, "With title", "<p>Dear {{ enduser.title }} {{ enduser.first_name }}</p>")
    _template(world, "Renewal", "<p>Hello {{ enduser.first_name }}, {{ company.name }} renews soon.</p>")
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}/compose")
    page.get_by_label("Template").select_option(label="With title")
    expect(page.get_by_label("Subject")).to_be_hidden()  # the template writes it
    page.get_by_role("button", name="Preview the template").click()
    expect(page.locator("#missing-fields")).to_contain_text("enduser.title")
    expect(page.locator("#composer-template option:checked")).to_have_text("With title")

    page.get_by_label("Template").select_option(label="Renewal")
    page.get_by_role("button", name="Preview the template").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Subject: Acme renewal")
    expect(preview).to_contain_text("Hello Jane, Acme renews soon.")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(f"{live_server}/outbox")
    expect(page.locator("#outbox")).to_contain_text("Renewal")
    [row] = outbound_rows(world)
    assert world.deliver(row.id) == "sent"
    assert world.sink.received[0].message["Subject"] == "Acme renewal"


def test_a_viewer_sees_no_composer_and_cannot_post_one(
    page: Page, live_server: str, world: World, client: TestClient
) -> None:
    log_in_as(page, live_server, world.sessions, world.team.viewer_id)
    page.goto(f"{live_server}/companies/{world.company_id}")
    expect(page.get_by_role("heading", name="Acme")).to_be_visible()
    expect(page.get_by_role("link", name="Write an email")).to_have_count(0)
    expect(page.get_by_role("link", name="Outbox")).to_have_count(0)
    assert page.goto(f"{live_server}/companies/{world.company_id}/compose").status == 403  # type: ignore[union-attr]

    assert sign_in_form(client, VIEWER, PASSWORD).status_code == 303
    token = csrf_of(client.get(f"/companies/{world.company_id}").text)
    refused = client.post(
        f"/companies/{world.company_id}/compose",
        data={"csrf_token": token, "sender": VIEWER, "to": world.contact, "subject": "x", "html": "<p>x</p>"},
    )
    assert refused.status_code == 403
    assert outbound_rows(world) == []
    forged = client.post(
        f"/contacts/{contact_id(world, world.contact)}/compose", data={"csrf_token": "forged"}
    )
    assert forged.status_code == 403


def test_a_preview_is_signed_by_the_chosen_from_and_names_a_recipient_who_is_no_contact(
    page: Page, live_server: str, world: World
) -> None:
    make_sending_team(world.sessions, world.box, world.team)
    _template(world, "Signed", "<p>Hello {{ enduser.first_name }}, regards, {{ sender.name }}</p>")
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/contacts/{contact_id(world, world.contact)}/compose")
    page.locator("#composer-from").select_option("success@team-a.example")
    page.get_by_label("Template").select_option(label="Signed")
    page.get_by_role("button", name="Preview the template").click()
    expect(page.locator("#preview")).to_contain_text("Hello Jane, regards, Success Team")
    expect(page.locator("#composer-from")).to_have_value("success@team-a.example")

    page.get_by_label("To", exact=True).fill("stranger@elsewhere.example")
    page.get_by_role("button", name="Preview the template").click()
    expect(page.locator("#error")).to_contain_text(
        "a template is filled in for the first To recipient who is a contact, and none is"
    )
    expect(page.get_by_label("To", exact=True)).to_have_value("stranger@elsewhere.example")
    assert outbound_rows(world) == []


def test_a_reply_to_ones_own_email_goes_to_its_recipients(page: Page, live_server: str, world: World) -> None:
    last = store_conversation(world.sessions, world.team.workspace_id, "own", [world.contact])
    with session_scope(world.sessions) as session:
        email = session.get(Email, last)
        assert email is not None
        email.from_address = MEMBER
    log_in_as(page, live_server, world.sessions, world.team.member_id)
    page.goto(f"{live_server}/emails/{last}/reply")
    expect(page.get_by_label("To", exact=True)).to_have_value(world.contact)
