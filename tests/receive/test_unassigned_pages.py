"""The unassigned list as a person uses it: in Chromium, and its server-side checks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import csrf_of, sign_in_form
from tests.pages.test_companies_pages import log_in
from tests.receive.conftest import LOCAL_RELAY, LogWorld, message
from tests.receive.test_unassigned_api import log
from touchline.inbound.receive import service


@pytest.mark.browser
def test_assign_a_forward_and_see_it_on_the_company_timeline(
    page: Page, live_server: str, world: LogWorld
) -> None:
    forward = log(world, world.forwarded("gmail.eml"))
    log(world, message("Lunch with a prospect", to="someone@unknown.example"))
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.get_by_role("link", name="Unassigned").click()
    expect(page.locator("#unassigned")).to_contain_text("Fwd: Renewal quote")
    expect(page.locator("#unassigned")).to_contain_text("Acme")  # the suggestion, shown in the list
    page.get_by_role("link", name="Fwd: Renewal quote").click()
    expect(page).to_have_url(f"{live_server}/unassigned/{forward}")
    expect(page.locator("#forwarded")).to_contain_text("jane.doe@acme.example")
    assign = page.locator("#assign")
    expect(assign.get_by_label("Acme")).to_be_checked()
    assign.get_by_label("Companies").fill("globex.example")  # a second company, by its domain
    assign.get_by_role("button", name="Assign").click()
    expect(page.get_by_role("status")).to_contain_text("Assigned “Fwd: Renewal quote” to Acme, Globex")
    expect(page.locator("#unassigned")).not_to_contain_text("Fwd: Renewal quote")
    expect(page.locator("#unassigned")).to_contain_text("Lunch with a prospect")

    page.get_by_role("link", name="Companies").click()
    page.get_by_role("link", name="Acme", exact=True).click()
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Fwd: Renewal quote")
    expect(timeline).to_contain_text("logged")


def _login(client: TestClient, email: str, password: str) -> str:
    response = sign_in_form(client, email, password)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/unassigned").text)


def test_typed_names_errors_and_dismissal(client: TestClient, world: LogWorld) -> None:
    email_id = log(world, message("Lunch with a prospect", to="someone@unknown.example"))
    csrf = _login(client, "admin@team-a.example", "admin-password-123")
    page = client.get(f"/unassigned/{email_id}")
    assert page.status_code == 200
    assert '<option value="Acme">' in page.text  # companies offered as completions
    response = client.post(
        f"/unassigned/{email_id}/assign", data={"csrf_token": csrf, "companies": "No Such Co"}
    )
    assert response.status_code == 400
    assert "no company is named" in response.text
    assert 'value="No Such Co"' in response.text  # what was typed stays in the form
    response = client.post(
        f"/unassigned/{email_id}/assign",
        data={"csrf_token": csrf, "contacts": "nobody@acme.example"},
    )
    assert response.status_code == 400
    assert "no contact has the address" in response.text
    forged = client.post(f"/unassigned/{email_id}/dismiss", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    response = client.post(
        f"/unassigned/{email_id}/dismiss", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert "Dismissed “Lunch with a prospect”" in response.text
    assert client.get(f"/unassigned/{email_id}").status_code == 404
    assert world.emails() == []


def test_refused_messages_page_is_for_admins(client: TestClient, world: LogWorld) -> None:
    result = service.log_message(
        world.sessions,
        world.team.workspace_id,
        message("Spam", sender="mallory@stranger.example"),
        service.Envelope("smtp", "mallory@stranger.example", "203.0.113.9"),
        max_bytes=1_000_000,
        checks=LOCAL_RELAY,
    )
    assert result.outcome == "refused"
    _login(client, "admin@team-a.example", "admin-password-123")
    page = client.get("/unassigned/refused")
    assert page.status_code == 200
    assert "mallory@stranger.example" in page.text
    assert "sender-not-user" in page.text
    assert "203.0.113.9" in page.text
    client.patch(
        f"/api/v1/users/{world.team.member_id}",
        json={"password": "member-password-1"},
        headers=world.team.headers(),
    )
    _login(client, "member@team-a.example", "member-password-1")
    assert client.get("/unassigned/refused").status_code == 403
    assert "Refused messages" not in client.get("/unassigned").text
