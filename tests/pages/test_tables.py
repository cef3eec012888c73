"""The companies and contacts tables: sorted by any column either way, filtered by owner and last
touch, pages that keep both, owners by name with the address on hover, and a search that finds
nothing says so and offers to clear it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, csrf_of, sign_in_form
from touchline.db import session_scope
from touchline.models import Company, Contact, User
from touchline.workspace import service
from touchline.workspace.listing import Listing, parse_owner
from touchline.workspace.permissions import Actor

NOW = datetime.now(UTC)


def three_companies(sessions: sessionmaker[Session], team: Team) -> None:
    """Three companies and a contact at each: Acme (owned by Mia Member, touched 2 days ago), beta
    (owned by the admin, touched 40 days ago), Cyan (no owner, never touched)."""
    with session_scope(sessions) as session:
        session.get_one(User, team.member_id).name = "Mia Member"
        operator = Actor.operator(team.workspace_id)
        for name, domain, owner, touched in (
            ("Acme", "zeta.example", team.member_id, NOW - timedelta(days=2)),
            ("beta", "alpha.example", team.admin_id, NOW - timedelta(days=40)),
            ("Cyan", "mid.example", None, None),
        ):
            company = service.create_company(session, operator, name, domains=[domain], account_owner=owner)
            company.last_touch_at = touched
            contact = service.create_contact(
                session, operator, f"{name.lower()}@{domain}", company_id=company.id
            )
            contact.name = {"Acme": "Zoe", "beta": "", "Cyan": "adam"}[name]
            contact.last_touch_at = touched


@pytest.fixture
def pages(client: TestClient, team: Team, sessions: sessionmaker[Session]) -> TestClient:
    """Signed in as the admin, with the three companies and their contacts."""
    three_companies(sessions, team)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    return client


def _names(html: str, link: str) -> list[str]:
    return re.findall(rf'<a href="/{link}/[0-9a-f-]+">([^<]*)</a>', html)


def test_companies_sort_by_every_column_both_ways(pages: TestClient) -> None:
    assert _names(pages.get("/companies").text, "companies") == ["Acme", "beta", "Cyan"]  # by name, any case
    assert _names(pages.get("/companies?dir=desc").text, "companies") == ["Cyan", "beta", "Acme"]
    assert _names(pages.get("/companies?sort=domain").text, "companies") == ["beta", "Cyan", "Acme"]
    # By owner's name or address (admin@… before Mia Member); no owner last either way.
    assert _names(pages.get("/companies?sort=owner").text, "companies") == ["beta", "Acme", "Cyan"]
    assert _names(pages.get("/companies?sort=owner&dir=desc").text, "companies") == ["Acme", "beta", "Cyan"]
    assert _names(pages.get("/companies?sort=last_touch&dir=desc").text, "companies") == [
        "Acme",
        "beta",
        "Cyan",
    ]
    page = pages.get("/companies?sort=last_touch").text
    assert _names(page, "companies") == ["beta", "Acme", "Cyan"]
    assert 'aria-sort="ascending"><a href="?sort=last_touch&amp;dir=desc"' in page  # the heading flips it
    assert pages.get("/companies?sort=colour").status_code == 422


def test_companies_filter_by_owner_and_last_touch_and_show_owners_by_name(
    pages: TestClient, team: Team
) -> None:
    page = pages.get(f"/companies?owner={team.member_id}").text
    assert _names(page, "companies") == ["Acme"]
    assert '<span title="member@team-a.example">Mia Member</span>' in page
    assert _names(pages.get("/companies?owner=none").text, "companies") == ["Cyan"]
    assert _names(pages.get("/companies?touched=30").text, "companies") == ["Acme"]
    assert _names(pages.get("/companies?touched=stale30").text, "companies") == ["beta", "Cyan"]
    assert _names(pages.get("/companies?touched=never").text, "companies") == ["Cyan"]
    assert pages.get("/companies?owner=someone").status_code == 422


def test_a_search_that_finds_nothing_says_so_and_offers_to_clear_it(pages: TestClient) -> None:
    page = pages.get("/companies?q=nothing-like-it").text
    assert "No results for 'nothing-like-it'" in page
    assert '<a href="/companies">Clear the search</a>' in page
    assert "No companies yet" not in page
    page = pages.get("/contacts?q=nobody&touched=7").text
    assert "No results for 'nobody' with these filters" in page


def test_contacts_sort_by_name_under_the_name_column_and_filter_by_teammate(
    pages: TestClient, team: Team
) -> None:
    # Named contacts by name, any case; the one without a name after them.
    assert _names(pages.get("/contacts").text, "contacts") == ["adam", "Zoe", "—"]
    assert _names(pages.get("/contacts?sort=email").text, "contacts") == ["Zoe", "—", "adam"]
    assert _names(pages.get("/contacts?sort=company&dir=desc").text, "contacts") == ["adam", "—", "Zoe"]
    assert _names(pages.get(f"/contacts?owner={team.admin_id}").text, "contacts") == ["—"]
    assert _names(pages.get("/contacts?touched=90").text, "contacts") == ["Zoe", "—"]


def test_pages_keep_the_sort_and_filters(
    pages: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        for number in range(60):
            session.add(Company(workspace_id=team.workspace_id, name=f"Filler {number:02}"))
    page = pages.get("/companies?sort=owner&dir=desc&touched=never").text
    assert 'href="?sort=owner&amp;dir=desc&amp;touched=never&amp;page=2"' in page


def test_the_listing_query_names_only_what_differs_from_the_default() -> None:
    assert Listing().query() == ""
    assert Listing(q="a b", sort="owner", descending=True).query() == "q=a+b&sort=owner&dir=desc"
    assert Listing(sort="name").sorted_by("name") == "?dir=desc"
    assert Listing(sort="name", descending=True).sorted_by("name") == "?"
    assert parse_owner(" none ") == "none"
    assert parse_owner(str(uuid.UUID(int=1))) == str(uuid.UUID(int=1))
    with pytest.raises(ValueError, match="badly formed"):
        parse_owner("x")


def test_a_600_character_company_name_is_refused_by_the_page_and_the_api(
    pages: TestClient, team: Team
) -> None:
    long_name = "N" * 600
    form = pages.get("/companies").text
    refused = pages.post("/companies", data={"csrf_token": csrf_of(form), "name": long_name})
    assert refused.status_code == 400
    assert "at most 200 characters; this one has 600" in refused.text
    api = pages.post("/api/v1/companies", json={"name": long_name}, headers=team.headers())
    assert api.status_code == 422
    assert _names(pages.get("/companies").text, "companies") == ["Acme", "beta", "Cyan"]


def test_a_contact_is_edited_and_deleted_from_its_page_and_a_mistake_keeps_what_was_typed(
    pages: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        zoe = session.query(Contact).filter_by(email="acme@zeta.example").one()
        cyan = session.query(Company).filter_by(name="Cyan").one()
        zoe_id, cyan_id = zoe.id, cyan.id
    page = pages.get(f"/contacts/{zoe_id}").text
    token = csrf_of(page)
    assert 'id="delete-contact"' in page
    saved = pages.post(
        f"/contacts/{zoe_id}",
        data={"csrf_token": token, "name": "Zoe Z", "email": "zoe@mid.example", "company_id": str(cyan_id)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    shown = pages.get(f"/contacts/{zoe_id}").text
    assert "Zoe Z" in shown
    assert f'<option value="{cyan_id}" selected>Cyan</option>' in shown

    taken = pages.post(
        f"/contacts/{zoe_id}",
        data={"csrf_token": token, "name": "Typed", "email": "cyan@mid.example", "company_id": ""},
    )
    assert taken.status_code == 400
    assert "already exists" in taken.text
    assert 'value="Typed"' in taken.text
    assert 'value="cyan@mid.example"' in taken.text

    deleted = pages.post(f"/contacts/{zoe_id}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert deleted.status_code == 303
    assert pages.get(f"/contacts/{zoe_id}").status_code == 404
