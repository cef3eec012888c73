"""The bulk send pages in Chromium: build filters, see the count change, check, send, see progress and
the skipped endusers; and through the forms: CSRF, errors that keep what was typed."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.browser import console_csp_violations
from tests.conftest import csrf_of, sign_in_form
from tests.outbound.bulk.conftest import Crowd
from tests.outbound.bulk.helpers import deliver_all
from tests.pages.test_companies_pages import log_in
from touchline.config import Settings
from touchline.outbound.bulk import tasks

ADMIN = "admin@team-a.example"
PASSWORD = "admin-password-123"


def _through_relay(app: FastAPI, crowd: Crowd, relay_settings: Settings) -> None:
    """The admin has no mailbox: they send through the relay, from an https touchline."""
    settings = relay_settings.model_copy(update={"base_url": crowd.world.settings.base_url})
    crowd.world.settings = settings
    app.state.settings = settings


@pytest.mark.browser
def test_build_filters_see_the_count_send_and_watch_progress(
    page: Page, live_server: str, app: FastAPI, crowd: Crowd, relay_settings: Settings
) -> None:
    _through_relay(app, crowd, relay_settings)
    csp_errors = console_csp_violations(page)
    log_in(page, live_server, ADMIN, PASSWORD)
    page.get_by_role("link", name="Bulk sends").click()
    expect(page).to_have_url(f"{live_server}/bulk")
    count = page.locator("#bulk-count")
    expect(count).to_contain_text("25 endusers selected, 2 of them skipped")

    page.get_by_label("Field", exact=True).fill("company.custom.tier")
    page.get_by_label("Value", exact=True).fill("gold")
    expect(count).to_contain_text("13 endusers selected, 2 of them skipped")
    page.get_by_role("button", name="Add filter").click()
    page.get_by_label("Field", exact=True).nth(1).fill("enduser.email")
    page.get_by_label("Operator", exact=True).nth(1).select_option("~")
    page.get_by_label("Value", exact=True).nth(1).fill("initech")
    expect(count).to_contain_text("6 endusers selected, 1 of them skipped")
    page.get_by_role("button", name="Remove").nth(1).click()
    expect(count).to_contain_text("13 endusers selected")

    page.locator("select[name=template_id]").select_option(label="news")
    page.locator("select[name=sender]").select_option(ADMIN)
    page.get_by_role("button", name="Check recipients").click()
    expect(page.locator("#bulk-plan-summary")).to_contain_text(
        "13 endusers selected: 11 would get an email, 2 would be skipped."
    )
    expect(page.locator("#bulk-plan-skipped")).to_contain_text("undeliverable")
    expect(page.get_by_label("Value", exact=True).first).to_have_value("gold")  # what was typed is kept

    page.get_by_role("button", name="Send", exact=True).click()
    expect(page).to_have_url(re.compile(rf"{live_server}/bulk/[0-9a-f-]+$"))
    bulk_id = uuid.UUID(page.url.rsplit("/", 1)[1])
    expect(page.locator("[data-progress-field=status]")).to_have_text("queueing")

    world = crowd.world
    assert tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "queued"
    assert deliver_all(crowd, bulk_id) == {"sent": 11}
    # The page refreshes itself from the progress endpoint.
    expect(page.locator("[data-progress-field=sent]")).to_have_text("11")
    expect(page.locator("[data-progress-field=skipped]")).to_have_text("2")
    page.reload()
    expect(page.locator("#bulk-skipped")).to_contain_text("unsubscribed on")
    expect(page.locator("#bulk-skipped")).to_contain_text("no-one@initech.invalid")
    assert csp_errors == []


def test_the_page_says_when_a_spent_budget_lets_the_rest_continue(
    client: TestClient, crowd: Crowd, relay_settings: Settings
) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    _through_relay(app, crowd, relay_settings)
    crowd.world.settings = crowd.world.settings.model_copy(update={"send_relay_messages_per_day": 5})
    app.state.clock = crowd.world.clock
    assert sign_in_form(client, ADMIN, PASSWORD).status_code == 303
    form = client.get("/bulk")
    template_id = re.search(r'<option value="([0-9a-f-]{36})"[^>]*>news<', form.text)
    assert template_id is not None
    sent = client.post(
        "/bulk",
        data={
            "csrf_token": csrf_of(form.text),
            "sender": ADMIN,
            "template_id": template_id[1],
            "mode": "each",
            "action": "send",
            "field": ["company.custom.tier"],
            "op": ["="],
            "value": ["gold"],
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    bulk_id = uuid.UUID(sent.headers["location"].rsplit("/", 1)[1])
    world = crowd.world
    tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock)
    assert deliver_all(crowd, bulk_id) == {"sent": 5, "queued": 6}
    shown = client.get(f"/bulk/{bulk_id}").text
    assert "continues tomorrow at" in shown
    assert "allows 5 messages a day" in shown
    progress = client.get(f"/bulk/{bulk_id}/progress").json()
    assert (progress["sent"], progress["waiting"]) == (5, 6)


def test_the_form_checks_csrf_and_keeps_what_was_typed_on_an_error(
    client: TestClient, crowd: Crowd, relay_settings: Settings
) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    _through_relay(app, crowd, relay_settings)
    assert sign_in_form(client, ADMIN, PASSWORD).status_code == 303
    form = client.get("/bulk")
    fields = {
        "sender": ADMIN,
        "template_id": "",
        "mode": "each",
        "field": ["company.tier"],
        "op": ["="],
        "value": ["gold"],
    }
    assert client.post("/bulk", data={"csrf_token": "forged", **fields}).status_code == 403
    refused = client.post(
        "/bulk",
        data={
            "csrf_token": csrf_of(form.text),
            **fields,
            "field": ["company.custom.tier"],
            "template_id": str(uuid.uuid4()),
        },
    )
    assert refused.status_code == 422
    assert "template not found" in refused.text
    wrong = client.post(
        "/bulk",
        data={
            "csrf_token": csrf_of(form.text),
            **fields,
            "template_id": re.findall(r'value="([0-9a-f-]{36})"', form.text)[0],
        },
    )
    assert wrong.status_code == 422
    assert "is not a field" in wrong.text
    assert 'value="company.tier"' in wrong.text
    assert (
        client.get("/bulk/count", params={"field": "company.tier", "op": "=", "value": "x"}).status_code
        == 422
    )
