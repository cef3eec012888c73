"""Every page at a desktop width and a phone's: screenshots for a person to look at, no console
errors, no sideways scrolling, and the header's "Log out" within reach."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.conftest import Team

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}
LIST_PAGES = [
    "/",
    "/companies",
    "/companies?q=nothing-matches",
    "/contacts",
    "/custom-fields",
    "/unassigned",
    "/unassigned/refused",
    "/outbox",
    "/templates",
    "/templates/new",
    "/sequences",
    "/bulk",
    "/analytics",
    "/users",
    "/settings",
    "/profile/email",
    "/profile/notifications",
    "/profile/password",
    "/no-such-page",
]


def _pages(client: TestClient, team: Team) -> list[str]:
    company = client.post(
        "/api/v1/companies",
        json={"name": "Acme Incorporated", "domains": ["acme.example"]},
        headers=team.headers(),
    ).json()
    contact = client.post(
        "/api/v1/contacts",
        json={"email": "jane.roe@acme.example", "name": "Jane Roe", "company_id": company["id"]},
        headers=team.headers(),
    )
    assert contact.status_code == 201, contact.text
    return [
        *LIST_PAGES,
        f"/companies/{company['id']}",
        f"/contacts/{contact.json()['id']}",
        f"/companies/{company['id']}/compose",
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_and_runs_clean(
    browser: Browser, live_server: str, client: TestClient, team: Team, tmp_path: Path, width: str
) -> None:
    paths = _pages(client, team)
    size = WIDTHS[width]
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # The unknown page's own 404 is the answer under test, not a fault of the page.
        if message.type == "error" and "404" not in message.text:
            problems.append(f"{page.url}: console error {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    try:
        page.goto(f"{live_server}/login")
        page.screenshot(path=tmp_path / f"{width}-login.png", full_page=True)
        page.get_by_label("Email").fill("admin@team-a.example")
        page.get_by_label("Password").fill("admin-password-123")
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{live_server}/")
        for index, path in enumerate(paths):
            page.goto(f"{live_server}{path}")
            page.wait_for_load_state("load")
            sideways = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if sideways > 0:
                problems.append(f"{path}: scrolls {sideways}px sideways at {size[0]}px")
            if path != "/no-such-page":
                log_out = page.get_by_role("button", name="Log out")
                box = log_out.bounding_box()
                if box is None or box["x"] < 0 or box["x"] + box["width"] > size[0]:
                    problems.append(f"{path}: Log out is out of reach at {size[0]}px ({box})")
            page.screenshot(path=tmp_path / f"{width}-{index:02d}.png", full_page=True)
        page.goto(f"{live_server}/docs")
        expect(page.locator(".swagger-ui").first).to_be_visible()
        page.screenshot(path=tmp_path / f"{width}-docs.png", full_page=True)
    finally:
        context.close()
    assert problems == [], "\n".join(problems)
    assert len(list(tmp_path.glob("*.png"))) == len(paths) + 2


def test_pages_and_the_api_docs_name_an_icon_that_exists(client: TestClient, team: Team) -> None:
    for path in ("/login", "/docs"):
        match = re.search(r'<link rel="icon" href="([^"]+)"', client.get(path).text)
        assert match, path
        icon = client.get(match.group(1))
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
