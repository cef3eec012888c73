"""The companies and contacts tables in Chromium, as a person uses them: headings that sort and sort
back, filters by owner, teammate, last touch and domain, pages, owners by name with the address on
hover, a search that finds nothing and its way back, and a contact edited and deleted from its page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.pages.test_companies_pages import log_in
from tests.pages.test_tables import three_companies
from touchline.db import session_scope
from touchline.inbound.match import match
from touchline.inbound.parse import parse_message
from touchline.inbound.store.directory import load_directory
from touchline.inbound.store.service import Holding, store_email
from touchline.models import Company

pytestmark = pytest.mark.browser


@pytest.fixture
def signed_in(page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]) -> Page:
    three_companies(sessions, team)
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    return page


def first_column(page: Page) -> list[str]:
    return page.locator("table tbody tr td:first-child").all_inner_texts()


def sort_both_ways(page: Page, heading: str, column: str, ascending: list[str]) -> None:
    """Click the heading: sorted by it, the address says so; click again: the other way round."""
    link = page.get_by_role("columnheader", name=heading).get_by_role("link")
    link.click()
    expect(page).to_have_url(re.compile(rf"\?sort={column}$"))
    expect(page.get_by_role("columnheader", name=heading)).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(ascending)
    link.click()
    expect(page).to_have_url(re.compile(rf"\?sort={column}&dir=desc$"))
    expect(page.get_by_role("columnheader", name=heading)).to_have_attribute("aria-sort", "descending")
    expect(page.locator("table tbody tr td:first-child")).to_have_text([*reversed(ascending)])


def test_companies_sort_by_each_heading_and_back(signed_in: Page) -> None:
    page = signed_in
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme", "beta", "Cyan"])
    name = page.get_by_role("columnheader", name="Name").get_by_role("link")
    name.click()  # already by name, so the first click turns it round
    expect(page).to_have_url(re.compile(r"/companies\?dir=desc$"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Cyan", "beta", "Acme"])
    name.click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme", "beta", "Cyan"])
    sort_both_ways(page, "Domains", "domain", ["beta", "Cyan", "Acme"])
    # Without an owner or a last touch, a company comes last whichever way round.
    page.get_by_role("columnheader", name="Account owner").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"\?sort=owner$"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["beta", "Acme", "Cyan"])
    page.get_by_role("columnheader", name="Account owner").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"\?sort=owner&dir=desc$"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme", "beta", "Cyan"])
    page.get_by_role("columnheader", name="Last touch").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"\?sort=last_touch$"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["beta", "Acme", "Cyan"])
    page.get_by_role("columnheader", name="Last touch").get_by_role("link").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme", "beta", "Cyan"])
    # The kept sort survives a reload.
    page.reload()
    expect(page.get_by_role("columnheader", name="Last touch")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme", "beta", "Cyan"])


def test_contacts_sort_by_each_heading_and_back(signed_in: Page, live_server: str) -> None:
    page = signed_in
    page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["adam", "Zoe", "—"])
    sort_both_ways(page, "Email", "email", ["Zoe", "—", "adam"])
    sort_both_ways(page, "Company", "company", ["Zoe", "—", "adam"])
    page.get_by_role("columnheader", name="Last touch").get_by_role("link").click()
    expect(page).to_have_url(f"{live_server}/contacts?sort=last_touch")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["—", "Zoe", "adam"])
    page.get_by_role("columnheader", name="Last touch").get_by_role("link").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Zoe", "—", "adam"])
    page.get_by_role("columnheader", name="Name").get_by_role("link").click()
    expect(page).to_have_url(f"{live_server}/contacts?")  # by name, the default, needs no more
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["adam", "Zoe", "—"])


def test_companies_filter_by_owner_last_touch_and_domain_with_owners_named(signed_in: Page) -> None:
    page = signed_in
    filters = page.locator("#company-filters")
    owner = page.get_by_role("cell", name="Mia Member")
    expect(owner.locator("span")).to_have_attribute("title", "member@team-a.example")
    owner.locator("span").hover()
    expect(page.get_by_title("member@team-a.example")).to_be_visible()

    filters.get_by_label("Account owner").select_option(label="Mia Member")
    filters.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"owner=[0-9a-f-]{36}"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme"])
    expect(filters.get_by_label("Account owner")).to_have_value(re.compile(r"[0-9a-f-]{36}"))

    filters.get_by_label("Account owner").select_option(label="No owner")
    filters.get_by_role("button", name="Search").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Cyan"])

    filters.get_by_label("Account owner").select_option(label="Any owner")
    filters.get_by_label("Last touch").select_option(label="In the last 30 days")
    filters.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"touched=30"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme"])
    filters.get_by_label("Last touch").select_option(label="Not in the last 30 days")
    filters.get_by_role("button", name="Search").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["beta", "Cyan"])

    filters.get_by_label("Last touch").select_option(label="Any time")
    filters.get_by_label("Name or domain").fill("alpha.example")
    filters.get_by_label("Name or domain").press("Enter")
    expect(page).to_have_url(re.compile(r"q=alpha.example"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["beta"])


def test_contacts_filter_by_teammate_last_touch_and_domain(signed_in: Page, team: Team) -> None:
    page = signed_in
    page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
    filters = page.locator("#contact-filters")
    filters.get_by_label("Teammate who owns the company").select_option(label="Mia Member's companies")
    filters.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(f"owner={team.member_id}"))
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Zoe"])

    filters.get_by_label("Teammate who owns the company").select_option(
        label="admin@team-a.example's companies"
    )
    filters.get_by_role("button", name="Search").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["—"])

    filters.get_by_label("Teammate who owns the company").select_option(label="Any teammate's companies")
    filters.get_by_label("Last touch").select_option(label="In the last 90 days")
    filters.get_by_role("button", name="Search").click()
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Zoe", "—"])

    filters.get_by_label("Last touch").select_option(label="Any time")
    filters.get_by_label("Name or address").fill("mid.example")
    filters.get_by_label("Name or address").press("Enter")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["adam"])


def test_pages_go_forward_and_back_keeping_the_sort(
    signed_in: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        for number in range(60):
            session.add(Company(workspace_id=team.workspace_id, name=f"Filler {number:02}"))
    page = signed_in
    page.goto(f"{live_server}/companies?dir=desc")
    pager = page.locator("nav.pager")
    expect(pager).to_contain_text("1–50 of 63")
    expect(page.locator("table tbody tr")).to_have_count(50)
    expect(page.locator("table tbody tr td:first-child").first).to_have_text("Filler 59")
    pager.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(f"{live_server}/companies?dir=desc&page=2")
    expect(pager).to_contain_text("51–63 of 63")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(
        [*(f"Filler {n:02}" for n in range(9, -1, -1)), "Cyan", "beta", "Acme"]
    )
    expect(pager.get_by_role("link", name="Next →")).to_have_count(0)
    pager.get_by_role("link", name="← Previous").click()
    expect(page).to_have_url(f"{live_server}/companies?dir=desc&page=1")
    expect(page.locator("table tbody tr td:first-child").first).to_have_text("Filler 59")


def test_a_search_finding_nothing_says_so_and_its_link_clears_it(signed_in: Page, live_server: str) -> None:
    page = signed_in
    search = page.get_by_label("Name or domain")
    search.fill("nothing-like-it")
    search.press("Enter")
    expect(page.locator("#no-results")).to_contain_text("No results for 'nothing-like-it'")
    page.get_by_role("link", name="Clear the search").click()
    expect(page).to_have_url(f"{live_server}/companies")
    expect(page.get_by_label("Name or domain")).to_have_value("")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["Acme", "beta", "Cyan"])

    page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
    page.get_by_label("Name or address").fill("nobody")
    page.get_by_label("Name or address").press("Enter")
    expect(page.locator("#no-results")).to_contain_text("No results for 'nobody'")
    page.get_by_role("link", name="Clear the search").click()
    expect(page).to_have_url(f"{live_server}/contacts")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["adam", "Zoe", "—"])


def test_a_contact_is_edited_and_deleted_from_its_page(signed_in: Page, live_server: str) -> None:
    page = signed_in
    page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Zoe", exact=True).click()
    form = page.locator("#edit-contact")
    form.get_by_label("Name").fill("Zoe Zed")
    form.get_by_label("Company").select_option(label="Cyan")
    form.get_by_role("button", name="Save contact").click()
    expect(page.get_by_role("status")).to_contain_text("Contact saved.")
    expect(page.get_by_role("heading", name="Zoe Zed", exact=True)).to_be_visible()
    expect(page.locator(".meta").first).to_contain_text("at Cyan")

    # A declined confirmation keeps the contact; an accepted one deletes it.
    answers = iter([False, True])
    questions: list[str] = []

    def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        if next(answers):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("button", name="Delete contact").click()
    assert questions == ["Delete the contact acme@zeta.example? This cannot be undone."]
    page.reload()
    expect(page.get_by_role("heading", name="Zoe Zed", exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete contact").click()
    expect(page).to_have_url(f"{live_server}/contacts")
    expect(page.get_by_role("status")).to_contain_text("Contact deleted.")
    expect(page.locator("table tbody tr td:first-child")).to_have_text(["adam", "—"])


def keep_thread(sessions: sessionmaker[Session], team: Team) -> None:
    """A question from the admin to Zoe at Acme and her reply: one conversation of two emails."""
    question = (
        b"From: Admin <admin@team-a.example>\r\nTo: Zoe <acme@zeta.example>\r\n"
        b"Subject: Seats for next year\r\nMessage-ID: <seats@team-a.example>\r\n"
        b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nHow many seats next year?\r\n"
    )
    reply = (
        b"From: Zoe <acme@zeta.example>\r\nTo: Admin <admin@team-a.example>\r\n"
        b"Subject: Re: Seats for next year\r\nMessage-ID: <seats-reply@zeta.example>\r\n"
        b"In-Reply-To: <seats@team-a.example>\r\nReferences: <seats@team-a.example>\r\n"
        b"Date: Mon, 02 Nov 2026 12:00:00 +0000\r\n\r\nForty, we think.\r\n"
    )
    for raw in (question, reply):
        with session_scope(sessions) as session:
            parsed = parse_message(raw)
            decision = match(parsed, load_directory(session, team.workspace_id))
            stored = store_email(
                session, team.workspace_id, parsed, decision, Holding(user_id=team.admin_id, via="import")
            )
            assert stored.email_id is not None


def test_an_email_subject_on_the_company_and_contact_pages_opens_its_conversation(
    signed_in: Page, team: Team, sessions: sessionmaker[Session]
) -> None:
    keep_thread(sessions, team)
    page = signed_in
    page.get_by_role("link", name="Acme", exact=True).click()
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("2 emails")
    timeline.get_by_role("link", name="Seats for next year").click()
    expect(page).to_have_url(re.compile(r"/conversations/[0-9a-f-]{36}$"))
    conversation_page = page.url
    expect(page.get_by_role("heading", name="Seats for next year")).to_be_visible()
    emails = page.locator("#conversation article")
    expect(emails).to_have_count(2)
    expect(emails.first).to_contain_text("How many seats next year?")
    expect(emails.last).to_contain_text("Forty, we think.")

    page.go_back()
    page.get_by_role("table").get_by_role("link", name="Zoe", exact=True).click()
    page.locator("#timeline").get_by_role("link", name="Seats for next year").click()
    expect(page).to_have_url(conversation_page)
    page.locator("#conversation article").last.get_by_role("link", name="Zoe").click()
    expect(page.get_by_role("heading", name="Re: Seats for next year")).to_be_visible()
