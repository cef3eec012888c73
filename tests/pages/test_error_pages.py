"""Pages answer mistakes with pages: errors in HTML (JSON stays for the API), forms that keep what was
typed, mark the field in error, and say what the API says about the same mistake."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Team, csrf_of, sign_in_form
from touchline.home import service as home_service

ADMIN = ("admin@team-a.example", "admin-password-123")


def _signed_in(client: TestClient) -> str:
    assert sign_in_form(client, *ADMIN).status_code == 303
    return csrf_of(client.get("/profile/email").text)


def _is_page(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("text/html")  # type: ignore[attr-defined]
    return str(response.text)  # type: ignore[attr-defined]


def _api_messages(client: TestClient, team: Team, path: str, body: dict[str, object]) -> dict[str, str]:
    response = client.post(path, json=body, headers=team.headers())
    assert response.status_code == 422, response.text
    return {str(error["loc"][-1]): error["msg"] for error in response.json()["errors"]}


def test_unknown_paths_and_malformed_ids_get_a_page_and_the_api_keeps_json(
    client: TestClient, team: Team
) -> None:
    _signed_in(client)
    html = _is_page(client.get("/no-such-page"), 404)
    assert "There is no such page." in html
    assert 'href="/"' in html
    assert "There is no such page." in _is_page(client.get("/companies/not-an-id"), 404)
    assert "There is no such page." in _is_page(client.get("/emails/12345"), 404)
    assert "page: Input should be greater than or equal to 1" in _is_page(
        client.get("/companies?page=0"), 422
    )

    api = client.get("/api/v1/no-such-route", headers=team.headers())
    assert api.status_code == 404
    assert (api.json()["status"], api.json()["detail"]) == (404, "Not Found")
    api = client.get("/api/v1/companies/not-an-id", headers=team.headers())
    assert api.status_code == 422
    assert api.json()["errors"][0]["loc"] == ["path", "company_id"]


def test_a_forbidden_page_is_a_page(client: TestClient, team: Team) -> None:
    client.patch(
        f"/api/v1/users/{team.viewer_id}", json={"password": "viewer-password-1"}, headers=team.headers()
    )
    assert sign_in_form(client, "viewer@team-a.example", "viewer-password-1").status_code == 303
    assert "Not allowed" in _is_page(client.get("/settings"), 403)


def test_a_failing_page_is_a_page(app: FastAPI, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> object:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(home_service, "home_view", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        _signed_in(client)
        html = _is_page(client.get("/"), 500)
        assert "Something went wrong" in html
        assert "the database went away" not in html
        api = client.get("/api/v1/companies", headers={"Authorization": "Bearer nothing"})
        assert api.headers["content-type"].startswith("application/problem+json")


def test_the_empty_imap_form_says_what_the_api_says_beside_each_field(client: TestClient, team: Team) -> None:
    csrf = _signed_in(client)
    html = _is_page(client.post("/profile/email/imap", data={"csrf_token": csrf}), 422)
    # A field left blank is one not given, as in JSON that leaves it out.
    api = _api_messages(client, team, "/api/v1/mailboxes/imap", {})
    for field in ("host", "username", "password"):
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', html), field
        assert f'id="{field}-error">{api[field]}</small>' in html


def test_a_port_of_abc_is_refused_and_what_was_typed_is_kept(client: TestClient, team: Team) -> None:
    csrf = _signed_in(client)
    form = {
        "csrf_token": csrf,
        "host": "imap.team-a.example",
        "port": "abc",
        "security": "starttls",
        "username": "admin@team-a.example",
        "password": "secret-typed-once",
    }
    html = _is_page(client.post("/profile/email/imap", data=form), 422)
    api = _api_messages(
        client,
        team,
        "/api/v1/mailboxes/imap",
        {"host": "imap.team-a.example", "port": "abc", "username": "u", "password": "p"},
    )
    assert f'id="port-error">{api["port"]}</small>' in html
    assert re.search(r'name="port"[^>]*value="abc"[^>]*aria-invalid="true"', html)
    assert 'value="imap.team-a.example"' in html
    assert 'value="admin@team-a.example"' in html
    assert '<option value="starttls" selected>' in html
    assert "secret-typed-once" not in html  # a password is never sent back
    assert client.get("/api/v1/users/me/mailbox", headers=team.headers()).status_code == 404


def test_settings_keep_what_was_typed_and_mark_the_field(client: TestClient, team: Team) -> None:
    csrf = _signed_in(client)
    form = {
        "csrf_token": csrf,
        "internal_domains": "team-a.example\nnewly-typed.example",
        "blocklist": "spam.example",
        "lookback_days": "0",
        "default_sync_sent": "on",
    }
    html = _is_page(client.post("/settings", data=form), 422)
    api = _api_messages_patch(client, team, {"lookback_days": 0})
    assert f'id="lookback_days-error">{api["lookback_days"]}</small>' in html
    assert re.search(r'name="lookback_days"[^>]*value="0"[^>]*aria-invalid="true"', html)
    assert "team-a.example\nnewly-typed.example</textarea>" in html
    assert "spam.example</textarea>" in html
    assert 'name="default_sync_sent" checked' in html
    assert 'name="default_sync_inbox" checked' not in html
    saved = client.get("/api/v1/workspace/settings", headers=team.headers()).json()
    assert "newly-typed.example" not in saved["internal_domains"]


def _api_messages_patch(client: TestClient, team: Team, body: dict[str, object]) -> dict[str, str]:
    response = client.patch("/api/v1/workspace/settings", json=body, headers=team.headers())
    assert response.status_code == 422, response.text
    return {str(error["loc"][-1]): error["msg"] for error in response.json()["errors"]}


@pytest.mark.browser
def test_in_the_browser_a_bad_port_is_marked_and_an_unknown_page_links_home(
    page: Page, live_server: str, team: Team
) -> None:
    page.goto(f"{live_server}/login?next=/profile/email")
    page.get_by_label("Email").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    form = page.locator("#connect-imap")
    form.get_by_label("IMAP server").fill("imap.team-a.example")
    form.get_by_label("Port", exact=True).fill("abc")
    form.get_by_label("Username").fill("admin@team-a.example")
    form.get_by_label("Password").fill("secret")
    form.get_by_role("button", name="Connect mailbox").click()
    port = page.locator("#connect-imap input[name=port]")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(port).to_have_value("abc")
    expect(page.locator("#port-error")).to_contain_text("valid integer")
    expect(page.locator("#connect-imap input[name=host]")).to_have_value("imap.team-a.example")
    expect(page.get_by_role("alert").first).to_contain_text("port")

    response = page.goto(f"{live_server}/companies/not-an-id")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.get_by_role("link", name="Back to the home page").click()
    expect(page).to_have_url(f"{live_server}/")


def test_settings_warn_about_free_mail_and_customer_domains_as_internal(
    client: TestClient, team: Team
) -> None:
    client.post(
        "/api/v1/companies", json={"name": "Acme", "domains": ["acme.example"]}, headers=team.headers()
    )
    response = client.patch(
        "/api/v1/workspace/settings",
        json={"internal_domains": ["team-a.example", "gmail.com", "acme.example"]},
        headers=team.headers(),
    )
    assert response.status_code == 200, response.text
    _signed_in(client)
    html = client.get("/settings").text
    warnings = re.findall(r'class="flash notice internal-domain-warning" role="alert">([^<]+)<', html)
    assert len(warnings) == 2
    assert warnings[0].startswith("gmail.com is a free-mail provider")
    assert warnings[1].startswith("acme.example is a domain of the customer Acme")
    assert html.count("<h2>Log address</h2>") == 1
