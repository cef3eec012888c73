"""The template pages: the list, the editor with its live preview (in Chromium), and the forms behind them."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import console_csp_violations
from tests.conftest import Team, csrf_of, sign_in_form
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.models import Template
from touchline.outbound.templates import service as templates
from touchline.workspace import service
from touchline.workspace.permissions import Actor

ADMIN = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"
RENEWAL_HTML = "<p>Hi {{ enduser.first_name }},</p>\n<p>{{ company.name }} renews soon.</p>"


def _contacts(sessions: sessionmaker[Session], team: Team) -> tuple[uuid.UUID, uuid.UUID]:
    """Ada of Acme, first by address, and Zed, without a name or a company."""
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        company = service.create_company(session, operator, "Acme", domains=["acme.example"])
        ada = service.create_contact(
            session, operator, "ada@acme.example", name="Ada Lovelace", company_id=company.id
        )
        zed = service.create_contact(session, operator, "zed@elsewhere.example")
        return ada.id, zed.id


def _stored(sessions: sessionmaker[Session], team: Team, name: str) -> Template:
    with session_scope(sessions) as session:
        row = templates.template_named(session, Actor.operator(team.workspace_id), name)
        session.expunge(row)
        return row


def _save(sessions: sessionmaker[Session], team: Team, name: str, subject: str, html: str) -> uuid.UUID:
    with session_scope(sessions) as session:
        row = templates.create_template(
            session, Actor.operator(team.workspace_id), name, templates.TemplateText(subject, html)
        )
        return row.id


@pytest.mark.browser
def test_write_a_template_with_its_live_preview_save_and_edit(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    _, zed = _contacts(sessions, team)
    csp_errors = console_csp_violations(page)
    log_in(page, live_server, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name="Templates", exact=True).click()
    expect(page.locator("#template-list")).to_contain_text("No templates yet")
    page.get_by_role("link", name="New template").click()
    expect(page).to_have_url(f"{live_server}/templates/new")
    preview = page.locator("#template-preview")
    expect(preview).to_contain_text("Write the HTML body")

    form = page.locator("#template-form")
    form.get_by_label("Name", exact=True).fill("Renewal")
    form.get_by_label("Subject").fill("Hello {{ enduser.first_name }}")
    form.get_by_label("HTML").fill(RENEWAL_HTML)
    expect(preview.locator("#preview-subject")).to_have_text("Hello Ada")
    expect(preview.locator("#preview-html")).to_contain_text("Acme renews soon.")
    expect(preview.locator("#preview-for")).to_have_text("Ada Lovelace <ada@acme.example>")

    # The preview follows the typing, keystroke by keystroke.
    subject = form.get_by_label("Subject")
    subject.press("End")
    subject.press_sequentially(", welcome")
    expect(preview.locator("#preview-subject")).to_have_text("Hello Ada, welcome")

    # A mistake shows with its part and line, and goes away once fixed.
    html = form.get_by_label("HTML")
    html.press("Control+End")
    html.press_sequentially("\n{{ enduser.nickname }}")
    expect(preview.locator("#preview-problems")).to_contain_text("html line 3")
    expect(preview.locator("#preview-problems")).to_contain_text("nickname")
    html.fill(RENEWAL_HTML)
    expect(preview.locator("#preview-html")).to_contain_text("Acme renews soon.")

    # Zed has neither a first name nor a company: both missing fields are named.
    form.get_by_label("Preview for").select_option(str(zed))
    expect(preview.locator("#preview-missing")).to_contain_text("enduser.first_name")
    expect(preview.locator("#preview-missing")).to_contain_text("company.name")
    expect(preview.locator("#preview-problems")).to_contain_text("zed@elsewhere.example")

    form.get_by_label("Track clicks").uncheck()
    form.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("status").first).to_contain_text("Template Renewal saved (version 1).")
    expect(page.get_by_role("heading", level=1)).to_contain_text("version 1")
    stored = _stored(sessions, team, "Renewal")
    assert (stored.subject, stored.html, stored.text) == (
        "Hello {{ enduser.first_name }}, welcome",
        RENEWAL_HTML,
        None,
    )
    assert (stored.track_opens, stored.track_clicks) == (True, False)
    # The contact chosen for the preview stays chosen.
    expect(form.get_by_label("Preview for")).to_have_value(str(zed))

    form.get_by_label("Text (optional)").fill("Hi {{ enduser.first_name | default('there') }}")
    form.get_by_label("Track opens").uncheck()
    form.get_by_label("Track clicks").check()
    form.get_by_role("button", name="Save a new version").click()
    expect(page.get_by_role("status").first).to_contain_text("Template Renewal saved (version 2).")
    stored = _stored(sessions, team, "Renewal")
    assert (stored.version, stored.track_opens, stored.track_clicks) == (2, False, True)
    assert stored.text == "Hi {{ enduser.first_name | default('there') }}"

    page.get_by_role("link", name="All templates").click()
    row = page.locator("#template-list tbody tr").first
    expect(row).to_contain_text("Renewal")
    expect(row).to_contain_text("Hello {{ enduser.first_name }}, welcome")
    expect(row.locator("td").nth(2)).to_have_text("2")
    expect(row).to_contain_text("Opens off")
    expect(row).to_contain_text("Clicks on")
    assert csp_errors == []


@pytest.mark.browser
def test_a_refused_save_keeps_what_was_typed_and_delete_asks_first(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    _contacts(sessions, team)
    template_id = _save(sessions, team, "Old", "Old news", "<p>Old</p>")
    log_in(page, live_server, ADMIN, ADMIN_PASSWORD)
    page.goto(f"{live_server}/templates/{template_id}")
    form = page.locator("#template-form")
    form.get_by_label("Subject").fill("Broken {{ enduser.first_name ")
    form.get_by_label("HTML").fill("<p>Line one</p>\n{% include 'x' %}")
    form.get_by_role("button", name="Save a new version").click()
    expect(page.locator("#error")).to_contain_text("Not saved")
    problems = page.locator("#save-problems")
    expect(problems).to_contain_text("subject line 1")
    expect(problems).to_contain_text("html line 2")
    expect(form.get_by_label("Subject")).to_have_value("Broken {{ enduser.first_name ")
    expect(form.get_by_label("HTML")).to_have_value("<p>Line one</p>\n{% include 'x' %}")
    assert _stored(sessions, team, "Old").version == 1

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete template").click()
    expect(page).to_have_url(f"{live_server}/templates")
    expect(page.get_by_role("status").first).to_contain_text("Template Old deleted.")
    assert questions == ["Delete the template Old? Emails already sent from it keep their text."]
    with session_scope(sessions) as session:
        assert session.scalars(select(Template)).all() == []


def _signed_in(client: TestClient) -> str:
    assert sign_in_form(client, ADMIN, ADMIN_PASSWORD).status_code == 303
    return csrf_of(client.get("/templates/new").text)


def _fragment(client: TestClient, token: str, contact_id: uuid.UUID | None, **fields: str) -> str:
    data = {"csrf_token": token, "subject": "Hi", "html": "<p>x</p>", **fields}
    if contact_id is not None:
        data["contact_id"] = str(contact_id)
    response = client.post("/templates/preview", data=data)
    assert response.status_code == 200, response.text
    assert "<html" not in response.text  # a fragment, not a page
    return response.text


def test_the_preview_fragment_needs_the_token_and_shows_html_sanitised(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    ada, _ = _contacts(sessions, team)
    token = _signed_in(client)
    forged = client.post("/templates/preview", data={"csrf_token": "forged", "html": "<p>x</p>"})
    assert forged.status_code == 403
    hostile = (
        '<p>Hi {{ enduser.first_name }}</p><script>alert(1)</script><img src=x onerror="alert(2)">'
        '<a href="javascript:alert(3)">x</a><a href="https://example.com/">site</a>'
    )
    shown = _fragment(client, token, ada, subject="<b>{{ enduser.first_name }}</b>", html=hostile)
    assert "<p>Hi Ada</p>" in shown
    assert "&lt;b&gt;Ada&lt;/b&gt;" in shown  # the subject is text
    assert "<script" not in shown
    assert "onerror" not in shown
    assert "javascript:" not in shown
    assert 'href="https://example.com/"' in shown
    # Without a contact the template is still checked.
    assert "Choose a contact" in _fragment(client, token, None)
    assert "html line 1" in _fragment(client, token, None, html="{% for %}")
    assert "no longer exists" in _fragment(client, token, uuid.uuid4())


@pytest.mark.parametrize(
    "html",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for i in range(10**9) %}{{ i }}{% endfor %}",
        "{{ enduser.first_name.__class__ }}",
        "{{ 'ab' * 100000000 }}",
    ],
)
def test_the_sandbox_holds_on_the_page(
    client: TestClient, team: Team, sessions: sessionmaker[Session], html: str
) -> None:
    ada, _ = _contacts(sessions, team)
    token = _signed_in(client)
    shown = _fragment(client, token, ada, html=html)
    assert 'id="preview-problems"' in shown
    assert re.search(r"<li data-part=\"html\">html", shown), shown
    assert 'id="preview-html"' not in shown
    # Saving refuses what is wrong for anybody; what fails only when rendered is saved, and its page
    # shows the problem instead of failing.
    saved = client.post(
        "/templates",
        data={"csrf_token": token, "name": "Escape", "subject": "Hi", "html": html},
        follow_redirects=False,
    )
    if saved.status_code == 400:
        assert 'id="save-problems"' in saved.text
        return
    assert saved.status_code == 303, saved.text
    editor = client.get(saved.headers["location"])
    assert editor.status_code == 200
    assert 'id="preview-problems"' in editor.text
    assert 'id="preview-html"' not in editor.text


def test_the_pages_need_send_email_and_the_workspace(
    client: TestClient, team: Team, other_team: Team, sessions: sessionmaker[Session]
) -> None:
    theirs = _save(sessions, other_team, "Theirs", "Secret", "<p>Secret</p>")
    token = _signed_in(client)
    assert client.get(f"/templates/{theirs}").status_code == 404
    for path in (f"/templates/{theirs}", f"/templates/{theirs}/delete"):
        response = client.post(
            path, data={"csrf_token": token, "name": "Stolen", "subject": "x", "html": "x"}
        )
        assert response.status_code == 404, path
    assert _stored(sessions, other_team, "Theirs").version == 1

    with session_scope(sessions) as session:
        service.add_user(
            session,
            Actor.operator(team.workspace_id),
            "viewer2@team-a.example",
            role="Viewer",
            password="viewer-password-123",
        )
    client.cookies.clear()
    assert sign_in_form(client, "viewer2@team-a.example", "viewer-password-123").status_code == 303
    companies = client.get("/companies")
    assert 'href="/templates"' not in companies.text  # no link to what the role cannot open
    viewer_token = csrf_of(companies.text)
    for path in ("/templates", "/templates/new"):
        assert client.get(path).status_code == 403, path
    created = client.post(
        "/templates", data={"csrf_token": viewer_token, "name": "Mine", "subject": "x", "html": "<p>x</p>"}
    )
    assert created.status_code == 403
    preview = client.post("/templates/preview", data={"csrf_token": viewer_token, "html": "<p>x</p>"})
    assert preview.status_code == 403
    with session_scope(sessions) as session:
        assert (
            session.scalars(select(Template.name).where(Template.workspace_id == team.workspace_id)).all()
            == []
        )
