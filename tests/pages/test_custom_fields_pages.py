"""A person defines custom fields, fills them on a company and a contact, and imports a CSV whose extra
columns become fields of the type they choose."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Team, csrf_of, sign_in_form
from tests.pages.test_companies_pages import log_in

pytestmark = pytest.mark.browser

ADMIN_EMAIL = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"


def test_define_fields_and_edit_them_on_a_company_and_a_contact(
    page: Page, live_server: str, team: Team
) -> None:
    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_role("link", name="Custom fields").click()
    new = page.locator("#new-custom-field")
    for kind, label, type_name in (
        ("companies", "Renewal date", "date"),
        ("companies", "Seats", "number"),
        ("contacts", "Favourite colour", "text"),
    ):
        new.get_by_label("Of").select_option(label=kind)
        new.get_by_label("Label").fill(label)
        new.get_by_label("Type").select_option(type_name)
        new.get_by_role("button", name="Add field").click()
        expect(page.get_by_role("status")).to_contain_text("created")
    expect(page.locator("#custom-field-list")).to_contain_text("renewal_date")
    expect(page.locator("#custom-field-list")).to_contain_text("favourite_colour")

    page.get_by_role("link", name="Companies").click()
    form = page.locator("#new-company")
    form.get_by_label("Name").fill("Acme")
    form.get_by_label("Domains").fill("acme.com")
    form.get_by_role("button", name="Create company").click()
    fields = page.locator("#custom-fields")
    fields.get_by_label("Renewal date").fill("2027-01-31")
    fields.get_by_label("Seats").fill("25")
    fields.get_by_role("button", name="Save custom fields").click()
    expect(page.get_by_role("status")).to_contain_text("Custom fields saved")
    expect(fields.get_by_label("Renewal date")).to_have_value("2027-01-31")
    expect(fields.get_by_label("Seats")).to_have_value("25")

    # Emptying a box clears the field.
    fields.get_by_label("Seats").fill("")
    fields.get_by_role("button", name="Save custom fields").click()
    expect(page.get_by_role("status")).to_contain_text("Custom fields saved")
    expect(fields.get_by_label("Seats")).to_have_value("")
    expect(fields.get_by_label("Renewal date")).to_have_value("2027-01-31")

    add = page.locator("#add-contact")
    add.get_by_label("Email").fill("jane@acme.com")
    add.get_by_label("Name").fill("Jane")
    add.get_by_role("button", name="Add contact").click()
    page.get_by_role("link", name="Jane").click()
    contact_fields = page.locator("#custom-fields")
    contact_fields.get_by_label("Favourite colour").fill("teal")
    contact_fields.get_by_role("button", name="Save custom fields").click()
    expect(page.get_by_role("status")).to_contain_text("Custom fields saved")
    expect(contact_fields.get_by_label("Favourite colour")).to_have_value("teal")

    # Renaming changes the label only.
    page.get_by_role("link", name="Custom fields").click()
    page.get_by_label("Label of seats").fill("Licensed seats")
    page.get_by_label("Label of seats").locator("..").get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_contain_text("renamed")
    expect(page.get_by_label("Label of seats")).to_have_value("Licensed seats")


def test_import_on_the_page_with_a_chosen_field_type(page: Page, live_server: str, team: Team) -> None:
    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_role("link", name="Contacts").click()
    page.locator("input[name=file]").set_input_files(
        files=[
            {
                "name": "contacts.csv",
                "mimeType": "text/csv",
                "buffer": b"email,name,Account Number,Joined\n"
                b"a@acme.com,A,00123,2026-01-05\nb@acme.com,B,x9,soon\n",
            }
        ]
    )
    # Left to detection, Account Number would be text anyway; Joined is chosen as a date, so line 3 fails.
    page.get_by_label("Field types").fill("joined=date")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("1 created, 0 updated, 1 failed")
    expect(page.get_by_role("alert")).to_contain_text(
        "Line 3: joined: 'soon' is not a date (write 2027-01-31)"
    )
    page.get_by_role("link", name="Custom fields").click()
    table = page.locator("#custom-field-list")
    expect(table.locator("tr", has_text="account_number")).to_contain_text("text")
    expect(table.locator("tr", has_text="joined")).to_contain_text("date")


def test_page_edits_are_checked_and_need_the_form_token(client: TestClient, team: Team) -> None:
    headers = team.headers()
    client.post(
        "/api/v1/custom-fields", json={"kind": "company", "label": "Seats", "type": "number"}, headers=headers
    )
    company = client.post("/api/v1/companies", json={"name": "Acme"}, headers=headers).json()
    assert sign_in_form(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303
    url = f"/companies/{company['id']}"
    token = csrf_of(client.get(url).text)

    refused = client.post(f"{url}/custom-fields", data={"custom.seats": "25"}, follow_redirects=False)
    assert refused.status_code == 403

    for data, message in (
        ({"custom.seats": "many"}, "seats: &#39;many&#39; is not a number"),
        ({"custom.mood": "happy"}, "&#39;mood&#39; is not a custom field here"),
    ):
        answer = client.post(f"{url}/custom-fields", data={"csrf_token": token, **data})
        assert answer.status_code == 200
        assert message in answer.text
    assert client.get(f"/api/v1/companies/{company['id']}", headers=headers).json()["custom_fields"] == {}

    saved = client.post(f"{url}/custom-fields", data={"csrf_token": token, "custom.seats": "12.5"})
    assert "Custom fields saved" in saved.text
    assert client.get(f"/api/v1/companies/{company['id']}", headers=headers).json()["custom_fields"] == {
        "seats": 12.5
    }
